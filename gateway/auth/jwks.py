"""Better Auth's public keys, fetched with the gateway's own aiohttp client and cached.

pyjwt's PyJWKClient fetches with blocking urllib, which would stall every request on this event loop, so the
fetch lives here. Each key is bound to exactly one algorithm at load time (from its type and curve), which is
what makes algorithm confusion impossible later: a token can only name the algorithm its key already has.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt

from ..http.bodies import BodyTooLarge, read_bounded

log = logging.getLogger("gateway.jwks")

MIN_RSA_BITS = 2048


class JwksError(Exception):
    """The key set could not be fetched or read; the last good keys stay in use."""


def _algorithm_for(jwk: dict[str, Any]) -> str | None:
    """The one algorithm a JWK may verify, or None when the gateway does not accept it."""
    kty, crv, declared = jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
    if kty == "OKP" and crv == "Ed25519":
        derived: tuple[str, ...] = ("EdDSA",)
    elif kty == "EC" and crv == "P-256":
        derived = ("ES256",)
    elif kty == "RSA":
        derived = ("RS256", "PS256")
    else:
        return None
    if declared is None:
        return derived[0]
    return declared if declared in derived else None


def parse_jwks(body: bytes) -> dict[str, jwt.PyJWK]:
    """Keys by `kid`; keys the gateway will not use are left out, never guessed at."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise JwksError("JWKS is not JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksError("JWKS has no keys list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        algorithm = _algorithm_for(entry)
        if not isinstance(kid, str) or not kid or algorithm is None or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry, algorithm=algorithm)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            log.warning("jwks: skipping unusable key %r", kid[:64])
            continue
        if entry["kty"] == "RSA" and getattr(key.key, "key_size", 0) < MIN_RSA_BITS:
            continue
        keys[kid] = key
    return keys


class JwksCache:
    """Keys from one issuer's JWKS URL, refreshed on expiry and, at most once per cooldown, on an unknown kid."""

    def __init__(
        self,
        url: str,
        *,
        session: aiohttp.ClientSession,
        cache_s: float,
        cooldown_s: float,
        timeout_s: float,
        max_bytes: int,
        on_change: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._session = session
        self._cache_s = cache_s
        self._cooldown_s = cooldown_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_bytes = max_bytes
        # Rebound when a reloaded policy builds a new verifier over the same key set (gateway/runtime.py).
        self.on_change = on_change
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fresh_until = 0.0
        self._last_attempt = -float("inf")
        self._last_unknown_kid_fetch = -float("inf")
        self._inflight: asyncio.Task[None] | None = None
        self.fetches = 0
        self.failures = 0

    @property
    def ready(self) -> bool:
        """True once a key set has been loaded; /readyz reports it."""
        return bool(self._keys)

    async def key_for(self, kid: str) -> jwt.PyJWK | None:
        now = self._clock()
        if now >= self._fresh_until and now - self._last_attempt >= self._cooldown_s:
            self._start_refresh()
        key = self._keys.get(kid)
        if key is not None:
            return key
        # A fetch already under way may predate the key (the issuer just rotated): wait for it, and if the
        # key is still unknown, spend this cooldown's one forced refetch on a fetch that starts now.
        if self._inflight is not None and not self._inflight.done():
            await asyncio.shield(self._inflight)
            key = self._keys.get(kid)
        if key is None and now - self._last_unknown_kid_fetch >= self._cooldown_s:
            self._last_unknown_kid_fetch = now
            await self.refresh()
            key = self._keys.get(kid)
        return key

    async def refresh(self) -> None:
        """Fetch now (start-up and tests); failures are logged, never raised."""
        self._start_refresh()
        if self._inflight is not None:
            await asyncio.shield(self._inflight)

    def _start_refresh(self) -> None:
        if self._inflight is None or self._inflight.done():
            self._last_attempt = self._clock()
            self._inflight = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        self.fetches += 1
        try:
            keys = parse_jwks(await self._fetch())
            if not keys:
                raise JwksError("JWKS holds no usable key")
        except (JwksError, aiohttp.ClientError, TimeoutError) as exc:
            self.failures += 1
            log.warning("jwks: fetch failed, keeping %d cached keys (%s)", len(self._keys), type(exc).__name__)
            return
        if keys.keys() != self._keys.keys():
            self.on_change()
        self._keys = keys
        self._fresh_until = self._clock() + self._cache_s

    async def _fetch(self) -> bytes:
        async with self._session.get(
            self._url, allow_redirects=False, timeout=self._timeout, headers={"Accept": "application/json"}
        ) as resp:
            if resp.status != 200:
                raise JwksError(f"JWKS answered {resp.status}")
            try:
                return await read_bounded(resp, self._max_bytes)
            except BodyTooLarge:
                raise JwksError("JWKS too large") from None
