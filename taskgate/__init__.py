"""The `taskgate` command: runs the whole system on one machine and mints development tokens.

It starts the gateway and the task service as separate processes (`python -m …`), exactly as they are deployed,
and never imports either package to run them: they meet only in the documented contract. The one exception is
`taskgate openapi` (`openapi.py`), a development command that describes how they meet.
"""
