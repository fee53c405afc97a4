"""taskgate's internal task service: a FastAPI app that trusts only the gateway's signed assertion."""
