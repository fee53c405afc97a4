"""taskgate gateway: the public edge that authenticates every call before the task service sees it."""
