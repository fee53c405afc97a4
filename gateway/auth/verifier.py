"""Bearer-token verification: from a presented token to a verified identity, its issuer and its claims.

The token's header is only ever used to *look up* a key (`kid`) and to check that it names the algorithm that
key is bound to; it never chooses an algorithm, a key or an issuer. Everything pyjwt is lenient about
(duplicate JSON keys, non-canonical base64url, numeric strings in time claims) is refused here first.

Which issuer verifies a token (docs/policy.md, "Which issuer verifies a token"): an `HS256` token is tried
against the HS256 secrets of the issuers that have them, and only those (issuers never share a secret); any
other algorithm looks its `kid` up in the key set of each issuer with a JWKS, and the key found must be bound
to exactly that algorithm. A token is that issuer's only if the issuer's key verifies its signature *and* it
carries the issuer's `iss` and `aud`; two issuers sharing one key set are told apart by `iss`. So a token can
name neither a key, nor an algorithm, nor an issuer: it can only be verified by one.

Verdicts are remembered per token, and the revocation check runs on remembered and fresh verdicts alike, so
a new check added here holds on every path.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import jwt

from ..policy.paths import USER_ID_PATTERN

MAX_TOKEN_LENGTH = 8192
# Far beyond any real time claim (year ~285 million), yet exactly representable as a float.
MAX_NUMERIC_DATE = 2**53
HMAC_ALGORITHM = "HS256"
ASSERTION_TYPE = "tg-assertion+jwt"
# The only shape worth decoding: three base64url segments (the signature may be empty, so that `alg: none`
# tokens are refused by the same checks as the rest). Anything else is refused before any decoding or key lookup.
_TOKEN68 = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_SUB = re.compile(USER_ID_PATTERN)
_FORBIDDEN_HEADER_PARAMS = frozenset({"crit", "jku", "x5u", "jwk", "x5c", "zip", "enc"})


class InvalidToken(ValueError):
    """A presented token failed verification (→ 401 invalid_token). The message is for logs, never a token."""


class RevocationsUnavailable(Exception):
    """Revocations are configured but not loaded yet: accepting any token could resurrect a revoked one (→ 503)."""


_NO_CLAIMS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Identity:
    """The verified caller (`sub`), the issuer that verified the token, its claims (read-only: a verdict is
    shared through the cache), and until when that verdict may be reused."""

    user_id: str
    valid_until: float
    # What a revocation can name: the issuer's session (`sid`) and the issue time (`iat`), when the token has them.
    session_id: str | None = None
    issued_at: float | None = None
    issuer: str = ""
    claims: Mapping[str, Any] = field(default_factory=lambda: _NO_CLAIMS, repr=False)


class KeySource(Protocol):
    """Where verification keys for asymmetric algorithms come from (the JWKS cache)."""

    async def key_for(self, kid: str) -> jwt.PyJWK | None:
        """The key with this `kid`, or None when none is known even after an allowed refetch."""


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    """What verification needs of one issuer: its HS256 secrets and/or its key set, and the `iss` and `aud`
    its tokens must carry (when set)."""

    name: str
    hmac_secrets: tuple[bytes, ...] = field(default=(), repr=False)
    keys: KeySource | None = None
    issuer: str | None = None
    audience: tuple[str, ...] = ()


class Revocations(Protocol):
    """Sessions and users the issuer has revoked (gateway/auth/revocations.py); a lookup, never I/O."""

    @property
    def loaded(self) -> bool:
        """Whether a complete set has been read from the issuer at least once."""

    def revoked(self, identity: Identity) -> bool:
        """Whether the issuer revoked the session or user this identity was issued for."""


def _b64url_json(segment: str) -> dict[str, Any]:
    """Decode one JWS segment strictly: canonical base64url, UTF-8, JSON object without duplicate keys."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("segment is not base64url") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != segment:
        raise InvalidToken("segment is not canonical base64url")
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise InvalidToken("segment is not strict JSON") from None
    if not isinstance(value, dict):
        raise InvalidToken("segment is not a JSON object")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _is_number(value: object) -> bool:
    """A JSON number usable as a NumericDate; huge integers (which would overflow float) are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return abs(value) <= MAX_NUMERIC_DATE and math.isfinite(value)


class TokenVerifier:
    """Verifies user tokens for a set of issuers and remembers verdicts so each token's signature is checked
    once."""

    def __init__(
        self,
        *,
        issuers: tuple[TrustedIssuer, ...],
        leeway_s: int,
        max_ttl_s: int | None,
        cache_size: int,
        revocations: Revocations | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = issuers
        self._leeway = leeway_s
        self._max_ttl = max_ttl_s
        self._cache_size = cache_size
        self._cache: dict[str, Identity] = {}
        self._revocations = revocations
        self._clock = clock
        self.cache_hits = 0
        self.cache_misses = 0

    def forget_all(self) -> None:
        """Drop remembered verdicts, e.g. when the key set changed and a key may have been withdrawn."""
        self._cache.clear()

    def remembered(self, token: str) -> Identity | None:
        """A still-valid verdict for `token` from the cache: the common case, answered without a coroutine.

        A verdict is only as good as the revocations it was checked against, so they are consulted again here:
        a cached token whose session was revoked since is dropped and refused by the full verification.
        """
        cached = self._cache.get(token)
        if cached is not None:
            if self._clock() < cached.valid_until and (
                self._revocations is None or not self._revocations.revoked(cached)
            ):
                self.cache_hits += 1
                return cached
            del self._cache[token]
        return None

    async def verify(self, token: str) -> Identity:
        """Return the identity in `token` or raise InvalidToken (or RevocationsUnavailable); nothing else."""
        identity = self.remembered(token)
        if identity is not None:
            return identity
        self.cache_misses += 1
        identity = await self._verify_uncached(token, self._clock())
        if self._revocations is not None:
            if not self._revocations.loaded:
                raise RevocationsUnavailable
            if self._revocations.revoked(identity):
                raise InvalidToken("token revoked")
        if self._cache_size:
            if len(self._cache) >= self._cache_size:
                del self._cache[next(iter(self._cache))]
            self._cache[token] = identity
        return identity

    async def _verify_uncached(self, token: str, now: float) -> Identity:
        if len(token) > MAX_TOKEN_LENGTH or not _TOKEN68.fullmatch(token):
            raise InvalidToken("not a JWS compact token")  # `null`, a session id, two words …: nothing decoded
        head_b64, payload_b64, _ = token.split(".")
        header = _b64url_json(head_b64)
        payload = _b64url_json(payload_b64)
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise InvalidToken("alg missing")
        if _FORBIDDEN_HEADER_PARAMS.intersection(header):
            raise InvalidToken("token header carries a parameter the gateway refuses")
        if header.get("typ") == ASSERTION_TYPE:
            raise InvalidToken("a gateway assertion is not a user token")
        self._check_claim_types(payload, now)
        if alg == HMAC_ALGORITHM:
            candidates = [
                (secret, HMAC_ALGORITHM, trusted) for trusted in self._issuers for secret in trusted.hmac_secrets
            ]
        else:
            candidates = await self._asymmetric_candidates(header, alg)
        if not candidates:
            raise InvalidToken(f"algorithm {alg!r} is not accepted")
        refusal = "signature does not verify"
        for key, algorithm, trusted in candidates:
            try:
                jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=trusted.audience or None,
                    issuer=trusted.issuer,
                    leeway=self._leeway,
                    options={"require": ["exp", "sub"], "verify_sub": False, "verify_jti": False},
                )
            except jwt.InvalidSignatureError:
                continue
            except (jwt.InvalidIssuerError, jwt.InvalidAudienceError) as exc:
                # This issuer's key, not its `iss`/`aud`: another issuer sharing the key set may still own it.
                refusal = type(exc).__name__
                continue
            except jwt.MissingRequiredClaimError as exc:
                if exc.claim not in ("iss", "aud"):
                    raise InvalidToken(type(exc).__name__) from None
                refusal = type(exc).__name__
                continue
            except jwt.PyJWTError as exc:
                raise InvalidToken(type(exc).__name__) from None
            except (ValueError, TypeError):
                raise InvalidToken("token could not be verified") from None
            return Identity(
                user_id=payload["sub"],
                valid_until=self._valid_until(payload),
                session_id=payload.get("sid"),
                issued_at=payload.get("iat"),
                issuer=trusted.name,
                claims=MappingProxyType(payload),
            )
        raise InvalidToken(refusal)

    async def _asymmetric_candidates(self, header: Mapping[str, Any], alg: str) -> list[tuple[Any, str, TrustedIssuer]]:
        """The keys named by `kid` in the key set of each issuer that has one, if bound to `alg`."""
        kid = header.get("kid")
        with_keys = [trusted for trusted in self._issuers if trusted.keys is not None]
        if not with_keys or not isinstance(kid, str) or not 0 < len(kid) <= 256:
            return []
        found: list[tuple[Any, str, TrustedIssuer]] = []
        mismatched = False
        for trusted in with_keys:
            key = await trusted.keys.key_for(kid) if trusted.keys is not None else None
            if key is None:
                continue
            if key.algorithm_name != alg:
                mismatched = True
                continue
            found.append((key, alg, trusted))
        if not found:
            raise InvalidToken("algorithm does not match the key" if mismatched else "unknown key id")
        return found

    def _check_claim_types(self, payload: Mapping[str, Any], now: float) -> None:
        sub = payload.get("sub")
        if not isinstance(sub, str) or not _SUB.fullmatch(sub):
            raise InvalidToken("sub missing or not a valid user id")
        if not _is_number(payload.get("exp")):
            raise InvalidToken("exp missing or not a number")
        if "sid" in payload and not isinstance(payload["sid"], str):
            # A session id of another type could never match a revocation: refused, not silently unrevocable.
            raise InvalidToken("sid is not a string")
        for claim in ("iat", "nbf"):
            if claim in payload and not _is_number(payload[claim]):
                raise InvalidToken(f"{claim} is not a number")
        if "iat" in payload and payload["iat"] > now + self._leeway:
            raise InvalidToken("iat is in the future")
        if self._max_ttl is not None:
            if "iat" not in payload:
                raise InvalidToken("iat required when a maximum lifetime is set")
            if payload["exp"] - payload["iat"] > self._max_ttl:
                raise InvalidToken("token lifetime exceeds the maximum")

    def _valid_until(self, payload: Mapping[str, Any]) -> float:
        return float(payload["exp"]) + self._leeway
