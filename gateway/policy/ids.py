"""Unique ids without a system call: a random per-process prefix and a counter.

The gateway mints two ids per request: the assertion's `jti` (an upstream accepts each once, so a repeat
would make it refuse a real request) and, when the client sent none, the `X-Request-Id`. Neither needs to be
secret (a forged assertion fails its signature whatever its id), only unique. `os.urandom` per id costs a
`getrandom` system call, about 5 % of a forwarded request's CPU on these machines (bench/profile.py); a
counter behind 96 random bits drawn once per process costs none, and cannot repeat within the process.

A forked child would inherit the prefix and the counter's position and so repeat its parent's next ids:
`os.register_at_fork` draws a new prefix in every child, so workers (and anything else that forks) never share
one. Processes started afresh draw their own at import.
"""

from __future__ import annotations

import itertools
import os
import weakref

from taskgate_assertion.format import b64url

_live: weakref.WeakSet[UniqueIds] = weakref.WeakSet()


class UniqueIds:
    """`next()` gives `<prefix>.<counter>`: the prefix is 96 random bits as base64url (16 characters), the
    counter hexadecimal; ids are short enough to ride on every request."""

    def __init__(self) -> None:
        self._prefix = ""
        self._counter = itertools.count(1)
        self.renew()
        _live.add(self)

    def renew(self) -> None:
        """A new random prefix; the counter carries on (any prefix with any count is a new id)."""
        self._prefix = b64url(os.urandom(12)).decode() + "."

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"


def _renew_after_fork() -> None:
    for ids in list(_live):
        ids.renew()


os.register_at_fork(after_in_child=_renew_after_fork)
