"""Revoked sessions and users, followed from the issuer's revocation feed (GATEWAY_REVOCATION_URL).

A JWT stays valid until its `exp`, so signing out would not end API access on its own. The issuer (Better Auth
with the taskgateRevocations plugin, docs/better-auth.md) records every ended session and every deleted or
banned user and serves them as a feed; each gateway worker polls it and holds the current set in memory. The
issuer stays the source of truth and the gateway stays stateless: a worker that starts reads the set again
before it is ready, and one that cannot reach the issuer keeps the set it has and keeps asking.

The token verifier consults the set for cached and fresh verdicts alike (gateway/auth/verifier.py); a lookup is one or
two dictionary reads. Entries are forgotten once every token they could match has expired, so the set stays as
small as the revocations of one token lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..http.bodies import BodyTooLarge, read_bounded
from ..settings import GatewaySettings
from .verifier import MAX_NUMERIC_DATE, Identity

log = logging.getLogger("gateway.revocations")

# A poll follows `more` at most this many pages; the rest waits for the next poll, from the cursor reached.
MAX_PAGES_PER_POLL = 100
MAX_IDENTIFIER_LENGTH = 256
# Cursors are opaque; they are sent back as a query parameter, so only URL-safe characters are taken.
_CURSOR = re.compile(r"[A-Za-z0-9._~-]{1,128}")


class FeedError(Exception):
    """The feed could not be read or said something the gateway will not use; the last good set stays."""


@dataclass(frozen=True, slots=True)
class FeedPage:
    """One answer of the feed: where to continue, whether more follows, and what it revokes."""

    cursor: str
    more: bool
    sessions: dict[str, float]  # sid → exp
    users: dict[str, tuple[float, float]]  # sub → (iat cut-off, exp)


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FeedError(f"feed entry {name} is not a number")
    if not 0 <= value <= MAX_NUMERIC_DATE:
        raise FeedError(f"feed entry {name} is out of range")
    return float(value)


def _identifier(value: object, name: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_IDENTIFIER_LENGTH:
        raise FeedError(f"feed entry {name} is not a usable identifier")
    return value


def parse_feed(body: bytes) -> FeedPage:
    """Read one feed answer strictly: an entry the gateway does not understand refuses the whole answer, since
    skipping it would silently leave a revoked token working."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise FeedError("feed is not JSON") from None
    if not isinstance(document, dict):
        raise FeedError("feed is not a JSON object")
    cursor, more, revoked = document.get("cursor"), document.get("more", False), document.get("revoked")
    if not isinstance(cursor, str) or not _CURSOR.fullmatch(cursor):
        raise FeedError("feed cursor missing or malformed")
    if not isinstance(more, bool):
        raise FeedError("feed 'more' is not a boolean")
    if not isinstance(revoked, list):
        raise FeedError("feed has no 'revoked' list")
    sessions: dict[str, float] = {}
    users: dict[str, tuple[float, float]] = {}
    for entry in revoked:
        if not isinstance(entry, dict):
            raise FeedError("feed entry is not an object")
        exp = _number(entry.get("exp"), "exp")
        if "sid" in entry:
            sid = _identifier(entry["sid"], "sid")
            sessions[sid] = max(exp, sessions.get(sid, exp))
        elif "sub" in entry:
            sub = _identifier(entry["sub"], "sub")
            before = _number(entry.get("before"), "before")
            known = users.get(sub, (before, exp))
            users[sub] = (max(before, known[0]), max(exp, known[1]))
        else:
            raise FeedError("feed entry names neither sid nor sub")
    return FeedPage(cursor, more, sessions, users)


class RevocationList:
    """What is revoked now: session ids, and per-user cut-offs on `iat`, each with the time it may be forgotten."""

    def __init__(self, *, leeway_s: float, clock: Callable[[], float] = time.time) -> None:
        # The verifier accepts a token up to leeway_s past its exp, so an entry outlives its exp by as much.
        self._leeway = leeway_s
        self._clock = clock
        self._sessions: dict[str, float] = {}  # sid → forget after
        self._users: dict[str, tuple[float, float]] = {}  # sub → (refuse iat below, forget after)
        self.loaded = False

    def __len__(self) -> int:
        return len(self._sessions) + len(self._users)

    def revoked(self, identity: Identity) -> bool:
        """The hot-path check. Expired entries may linger until the next poll; they only match tokens that have
        expired too, so no time comparison is needed here."""
        sid = identity.session_id
        if sid is not None and sid in self._sessions:
            return True
        cut_off = self._users.get(identity.user_id)
        # A token without iat cannot show it was issued after the cut-off: refused (fail closed).
        return cut_off is not None and (identity.issued_at is None or identity.issued_at < cut_off[0])

    def merge(self, page: FeedPage) -> None:
        """Add a page's entries; a union, so a repeated entry (the feed repeats its last seconds) changes nothing."""
        now = self._clock()
        for sid, exp in page.sessions.items():
            until = exp + self._leeway
            if until > max(now, self._sessions.get(sid, 0.0)):
                self._sessions[sid] = until
        for sub, (before, exp) in page.users.items():
            until = exp + self._leeway
            if until <= now:
                continue
            known = self._users.get(sub)
            self._users[sub] = (max(before, known[0]), max(until, known[1])) if known else (before, until)

    def expire(self) -> None:
        """Forget entries no valid token can match any more."""
        now = self._clock()
        for sid in [sid for sid, until in self._sessions.items() if until <= now]:
            del self._sessions[sid]
        for sub in [sub for sub, (_, until) in self._users.items() if until <= now]:
            del self._users[sub]


class RevocationFeed:
    """Polls the feed every GATEWAY_REVOCATION_POLL_S and keeps `revoked` current; one per worker process."""

    def __init__(
        self,
        url: str,
        secret: bytes,
        revoked: RevocationList,
        *,
        poll_s: float,
        timeout_s: float,
        max_bytes: int,
        max_stale_s: float | None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._headers = {
            "Authorization": f"Bearer {secret.decode()}",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
        }
        self.revoked = revoked
        self._poll_s = poll_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_bytes = max_bytes
        self._max_stale_s = max_stale_s
        self._monotonic = monotonic
        self._session: aiohttp.ClientSession | None = None
        self._cursor: str | None = None
        self._updated_at: float | None = None
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self.polls = 0
        self.failures = 0

    @property
    def age_s(self) -> float | None:
        """Seconds since the set was last brought fully up to date; None before the first time."""
        return None if self._updated_at is None else self._monotonic() - self._updated_at

    @property
    def ready(self) -> bool:
        """For /readyz: loaded once, and (only with GATEWAY_REVOCATION_MAX_STALE_S) not older than that."""
        age = self.age_s
        if age is None:
            return False
        return self._max_stale_s is None or age <= self._max_stale_s

    def status(self) -> dict[str, Any]:
        """What /readyz reports beside its checks: staleness is visible without failing readiness."""
        age = self.age_s
        return {
            "loaded": self.revoked.loaded,
            "entries": len(self.revoked),
            "age_s": None if age is None else round(age, 3),
            "failing": self._failing,
        }

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Load the current set once (bounded by the timeout), then keep polling in the background."""
        self._session = session
        await self.poll()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self.poll()
            except Exception as exc:  # a dead poller would freeze revocations silently
                self.failures += 1
                self._failing = True
                log.error("revocations: poll failed unexpectedly (%s)", type(exc).__name__)

    async def poll(self) -> bool:
        """Read the feed from the cursor until it says no more follows; never raises on a feed failure."""
        self.polls += 1
        try:
            for _ in range(MAX_PAGES_PER_POLL):
                page = parse_feed(await self._fetch())
                self.revoked.merge(page)
                self._cursor = page.cursor
                if not page.more:
                    break
            else:
                return False  # a long backlog: not up to date yet; the next poll continues from the cursor
        except (FeedError, aiohttp.ClientError, TimeoutError) as exc:
            self.failures += 1
            if not self._failing:
                log.warning(
                    "revocations: feed unavailable, keeping %d entries (%s)", len(self.revoked), type(exc).__name__
                )
            self._failing = True
            return False
        if self._failing:
            log.info("revocations: feed available again")
        self._failing = False
        self.revoked.expire()
        self.revoked.loaded = True
        self._updated_at = self._monotonic()
        return True

    async def _fetch(self) -> bytes:
        if self._session is None:
            raise RuntimeError("RevocationFeed.start() was not awaited")
        params = {"after": self._cursor} if self._cursor is not None else None
        async with self._session.get(
            self._url, params=params, headers=self._headers, allow_redirects=False, timeout=self._timeout
        ) as resp:
            if resp.status != 200:
                raise FeedError(f"feed answered {resp.status}")
            try:
                return await read_bounded(resp, self._max_bytes)
            except BodyTooLarge:
                raise FeedError("feed answer too large") from None


def revocation_feed(settings: GatewaySettings) -> RevocationFeed | None:
    """The feed the settings ask for, or None: with GATEWAY_REVOCATION_URL unset revocation costs nothing."""
    secret = settings.revocation_secret_value
    if settings.revocation_url is None or secret is None:
        return None
    return RevocationFeed(
        settings.revocation_url,
        secret,
        RevocationList(leeway_s=settings.jwt_leeway_s),
        poll_s=settings.revocation_poll_s,
        timeout_s=settings.revocation_timeout_s,
        max_bytes=settings.revocation_max_bytes,
        max_stale_s=settings.revocation_max_stale_s,
    )
