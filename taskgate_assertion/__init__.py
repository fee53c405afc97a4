"""The gateway assertion, in one place: its format (`format`), its verification (`verify`) and the one-line
FastAPI dependency an upstream uses to trust only the gateway (`fastapi`). The gateway signs with `format`'s
constants; every upstream verifies with `verify`. Contract: docs/contract.md, "The gateway assertion".

Importing this package imports nothing else: `format` and `verify` need only the standard library, and only
`taskgate_assertion.fastapi` needs FastAPI.
"""
