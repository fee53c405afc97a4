"""Verifies the gateway assertion (docs/contract.md, "The gateway assertion") for one upstream.

An upstream trusts nothing a client could have sent: only a short-lived HS256 statement signed with the
internal secret, made for this upstream (`aud`), bound to this exact method, request target and body, and
accepted once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskgate_assertion.format import (
    BODY,
    CLAIM_HEADERS,
    CLOCK_SKEW_S,
    EMPTY_BODY_DIGEST,
    ISSUER,
    MAX_LIFETIME_S,
    METHOD,
    REQUEST_ID,
    TARGET,
    TYPE,
    USER_ID,
    body_digest,
)

# Sized for about 6,000 accepted requests a second per process: an id is remembered for the assertion's
# lifetime plus the clock skew (15 s with the gateway's 10 s), about 200 bytes each (20 MB when full).
DEFAULT_REPLAY_CAPACITY = 100_000


class AssertionRejected(Exception):
    """Why an assertion was refused; logged, never sent to the client."""


@dataclass(frozen=True, slots=True)
class Verified:
    """What a verified assertion says: the acting user (None on an `auth: none` route), the request id, and the
    headers the gateway copied from the token's claims (name in lower case → value; checked against the request
    and returned only when `verify` was given the request's headers)."""

    user: str | None
    request_id: str | None
    claim_headers: Mapping[str, str] = field(default_factory=dict)


# A header the request carries, by name (case-insensitively): its one value, None when absent; raises
# AssertionRejected when it was sent more than once.
HeaderLookup = Callable[[str], str | None]


def request_target(scope: Mapping[str, Any]) -> bytes:
    """The target exactly as it came off the wire: raw path, plus '?' and the raw query if any."""
    raw_path = scope.get("raw_path")
    if not isinstance(raw_path, bytes):
        raise AssertionRejected("server gave no raw path")
    query = scope.get("query_string", b"")
    return raw_path + b"?" + query if query else raw_path


class ReplayCache:
    """The ids of accepted assertions, each until its assertion could no longer be accepted anyway.

    Memory is bounded twice: an id is forgotten once `exp` is past (with the clock skew), and at most
    `capacity` ids are held; when full, new assertions are refused (fail closed: a flood of valid
    assertions must not make the cache forget ids that could still be replayed). Ids are kept in the order
    they were accepted, which is the order of their `exp` up to the gateways' clock differences; an id
    behind one that expires later is remembered a little longer, which is only safer.
    """

    def __init__(self, capacity: int = DEFAULT_REPLAY_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("the replay cache needs room for at least one id")
        self.capacity = capacity
        self._seen: set[str] = set()
        self._order: deque[tuple[int, str]] = deque()

    def __len__(self) -> int:
        return len(self._seen)

    def admit(self, jti: str, exp: int, now: float) -> None:
        """Remember `jti` until `exp`, or raise AssertionRejected if it was already accepted or there is no room."""
        order, seen = self._order, self._seen
        forget_until = now - CLOCK_SKEW_S  # an assertion with exp <= this is refused as expired anyway
        while order and order[0][0] <= forget_until:
            seen.discard(order.popleft()[1])
        if jti in seen:
            raise AssertionRejected("replayed (id already accepted)")
        if len(seen) >= self.capacity:
            raise AssertionRejected("replay cache full")
        seen.add(jti)
        order.append((exp, jti))


# The compact JWS form, strictly: three unpadded base64url segments (RFC 7515 §7.1). pyjwt also took
# padding and, before 2.13, junk characters; the gateway sends neither.
_SEGMENT = re.compile(rb"[A-Za-z0-9_-]*")
# How the gateway writes a claim header's name in `hdr`: an RFC 9110 token, lower case. Anything else is refused
# before it is looked up, so no lookup (Starlette's encodes names as Latin-1) can fail on it.
_CLAIM_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]{1,64}")
_KNOWN_HEADERS = 16  # distinct authenticated headers remembered; the gateway sends one


def _b64decode(segment: bytes) -> bytes:
    if len(segment) % 4 == 1 or not _SEGMENT.fullmatch(segment):
        raise AssertionRejected("malformed assertion (not base64url)")
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


def _json_object(segment: bytes, part: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment))
    except (ValueError, RecursionError):  # bad JSON or text encoding; nesting deeper than the parser's stack
        raise AssertionRejected(f"malformed assertion ({part} is not JSON)") from None
    if not isinstance(value, dict):
        raise AssertionRejected(f"malformed assertion ({part} is not a JSON object)")
    return value


def _check_header(header: dict[str, Any]) -> None:
    """typ and alg are the contract's. `crit` names extensions that must be understood (RFC 7515 §4.1.11) and
    no verifier here understands any; `b64: false` (a detached payload) is refused likewise."""
    if header.get("typ") != TYPE or header.get("alg") != "HS256":
        raise AssertionRejected("wrong typ or alg header")
    if "kid" in header and not isinstance(header["kid"], str):
        raise AssertionRejected("kid is not a string")
    if "crit" in header or header.get("b64", True) is False:
        raise AssertionRejected("header names an extension")


def _claim_headers(hdr: object, received: HeaderLookup) -> dict[str, str]:
    """The `hdr` claim checked against the request: every header it names as sent, none it says was not sent."""
    if hdr is None:
        return {}
    if not isinstance(hdr, dict):
        raise AssertionRejected("hdr is not an object")
    bound = {}
    for name, value in hdr.items():
        if not _CLAIM_HEADER_NAME.fullmatch(name):
            raise AssertionRejected("hdr names something that is not a lower-case header name")
        if value is not None and not isinstance(value, str):
            raise AssertionRejected("hdr holds a value that is not a string")
        if received(name) != value:
            raise AssertionRejected(f"{name} is not the value the gateway sent")
        if value is not None:
            bound[name] = value
    return bound


class AssertionVerifier:
    """Checks one assertion for one upstream (`audience`) against the configured secrets; any may have signed it.

    An HMAC-SHA256 over the exact bytes the gateway signed, then the contract's checks, in a few
    microseconds (pyjwt's general-purpose decode cost about 130 µs). The signature is compared in constant
    time before anything of the token is parsed; then: a JSON-object header and payload, `kid` a string,
    `iss` and `aud` (strict: a string, not a list) exactly ours, `iat`/`exp` integers within the skew and
    lifetime, `mth`/`tgt`/`bdy` equal to this request's, `sub` (when present, or when required) a user id,
    the claim headers `hdr` binds (when the caller reads claim headers), and last, once everything else has
    passed, `jti` not seen before — so a refused attempt never uses up an id the real request still needs.
    """

    def __init__(
        self,
        secrets: Sequence[bytes],
        audience: str,
        *,
        replay_capacity: int = DEFAULT_REPLAY_CAPACITY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secrets:
            raise ValueError("at least one internal secret is required")
        self.audience = audience
        self._macs = tuple(hmac.new(secret, digestmod=hashlib.sha256) for secret in secrets)
        self._clock = clock
        self.replays = ReplayCache(replay_capacity)
        # Header segments that verified and passed _check_header: the same bytes pass again.
        self._good_headers: set[bytes] = set()

    def _signed(self, signing_input: bytes, signature: bytes) -> bool:
        matched = False
        for base in self._macs:  # every secret, whatever matched: the time spent says nothing about which
            mac = base.copy()
            mac.update(signing_input)
            matched |= hmac.compare_digest(mac.digest(), signature)
        return matched

    def _claims(self, token: str) -> dict[str, Any]:
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError:
            raise AssertionRejected("malformed assertion (not ASCII)") from None
        parts = raw.split(b".")
        if len(parts) != 3:
            raise AssertionRejected("malformed assertion (not three segments)")
        header, payload, signature = parts
        if not self._signed(raw[: len(header) + 1 + len(payload)], _b64decode(signature)):
            raise AssertionRejected("signature does not verify with any internal secret")
        if header not in self._good_headers:
            _check_header(_json_object(header, "header"))
            if len(self._good_headers) < _KNOWN_HEADERS:
                self._good_headers.add(header)
        return _json_object(payload, "payload")

    def verify(
        self,
        token: str,
        method: str,
        target: bytes,
        body: bytes,
        user_header: str | None,
        *,
        require_user: bool = True,
        headers: HeaderLookup | None = None,
    ) -> Verified:
        """What the assertion says, or AssertionRejected. The id is remembered only if everything else passed.

        `headers` looks the request's headers up: given, the headers the assertion binds (`hdr`, a route with
        `headers:` in the policy) must be exactly as the gateway sent them — the same value, and absent where it
        sent none — and come back in `Verified.claim_headers`. Without it they are not checked, and none come
        back: an upstream that reads no claim header has nothing to check."""
        claims = self._claims(token)
        if claims.get("iss") != ISSUER or claims.get("aud") != self.audience:
            raise AssertionRejected("wrong iss or aud")

        iat, exp = claims.get("iat"), claims.get("exp")
        if isinstance(iat, bool) or isinstance(exp, bool) or not isinstance(iat, int) or not isinstance(exp, int):
            raise AssertionRejected("iat and exp must be integers")
        now = self._clock()
        if iat > now + CLOCK_SKEW_S:
            raise AssertionRejected("issued in the future")
        if exp <= now - CLOCK_SKEW_S:
            raise AssertionRejected("expired")
        if not 0 < exp - iat <= MAX_LIFETIME_S:
            raise AssertionRejected("lifetime out of range")

        if claims.get(METHOD) != method.upper():
            raise AssertionRejected("method does not match")
        tgt = claims.get(TARGET)
        try:
            if not isinstance(tgt, str) or tgt.encode("utf-8") != target:
                raise AssertionRejected("target does not match")
        except UnicodeEncodeError:
            raise AssertionRejected("target does not match") from None
        if claims.get(BODY) != (body_digest(body) if body else EMPTY_BODY_DIGEST):
            raise AssertionRejected("body does not match")

        sub = claims.get("sub")
        if sub is None:
            if require_user:
                raise AssertionRejected("no sub (an auth: none route) where a user is required")
            if user_header is not None:
                raise AssertionRejected("X-User-Id without a sub")
        elif not isinstance(sub, str) or not USER_ID.fullmatch(sub):
            raise AssertionRejected("sub is not a user id")
        elif user_header is not None and user_header != sub:
            raise AssertionRejected("X-User-Id does not match sub")
        rid = claims.get(REQUEST_ID)
        bound = _claim_headers(claims.get(CLAIM_HEADERS), headers) if headers is not None else {}

        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise AssertionRejected("no jti")
        self.replays.admit(jti, exp, now)
        return Verified(sub, rid if isinstance(rid, str) else None, bound)
