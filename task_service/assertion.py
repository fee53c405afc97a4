"""Verifies the gateway assertion (docs/contract.md, "The gateway assertion").

The service trusts nothing a client could have sent: only a short-lived HS256 statement signed
with the internal secret, bound to this exact method, request target and user, says who is acting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import HTTPException, Request, status

logger = logging.getLogger("task_service.assertion")

ASSERTION_HEADER = "x-gateway-assertion"
USER_HEADER = "x-user-id"
TYPE = "tg-assertion+jwt"
ISSUER = "taskgate-gateway"
AUDIENCE = "task-service"
CLOCK_SKEW_S = 5
MAX_LIFETIME_S = 60
# The gateway only routes user ids of this form (docs/contract.md); anything else cannot be a real caller.
USER_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class AssertionRejected(Exception):
    """Why an assertion was refused; logged, never sent to the client."""


def request_target(scope: Mapping[str, Any]) -> bytes:
    """The target exactly as it came off the wire: raw path, plus '?' and the raw query if any."""
    raw_path = scope.get("raw_path")
    if not isinstance(raw_path, bytes):
        raise AssertionRejected("server gave no raw path")
    query = scope.get("query_string", b"")
    return raw_path + b"?" + query if query else raw_path


# The compact JWS form, strictly: three unpadded base64url segments (RFC 7515 §7.1). pyjwt also took
# padding and, before 2.13, junk characters; the gateway sends neither.
_SEGMENT = re.compile(rb"[A-Za-z0-9_-]*")
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
    """The checks pyjwt made on the header, and ours: typ and alg are the contract's. `crit` names extensions
    that must be understood (RFC 7515 §4.1.11) and this service understands none; pyjwt knew `b64` (a detached
    payload, refused here as there)."""
    if header.get("typ") != TYPE or header.get("alg") != "HS256":
        raise AssertionRejected("wrong typ or alg header")
    if "kid" in header and not isinstance(header["kid"], str):
        raise AssertionRejected("kid is not a string")
    if "crit" in header or header.get("b64", True) is False:
        raise AssertionRejected("header names an extension")


class AssertionVerifier:
    """Checks one assertion against the configured secrets; any of them may have signed it.

    An HMAC-SHA256 over the exact bytes the gateway signed, then the contract's checks, in a few
    microseconds: pyjwt's general-purpose decode (any algorithm, any key type, options resolved per
    call, the header parsed twice) cost about 130 µs of the service's request, more than the whole
    database read. Every check pyjwt made with the options this service used is made here too: three
    segments, a JSON-object header and payload, the signature (compared in constant time, before anything
    of the token is parsed), `kid` a string, `iss` and `aud` (strict: a string, not a list) exactly ours,
    `sub` and `jti` strings, `iss`/`aud`/`sub`/`iat`/`exp` present.
    """

    def __init__(self, secrets: Sequence[bytes], clock: Callable[[], float] = time.time) -> None:
        if not secrets:
            raise ValueError("at least one internal secret is required")
        self._macs = tuple(hmac.new(secret, digestmod=hashlib.sha256) for secret in secrets)
        self._clock = clock
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

    def verify(self, token: str, method: str, target: bytes, user_header: str | None) -> str:
        """Return the acting user id, or raise AssertionRejected."""
        claims = self._claims(token)
        if claims.get("iss") != ISSUER or claims.get("aud") != AUDIENCE:
            raise AssertionRejected("wrong iss or aud")
        if "jti" in claims and not isinstance(claims["jti"], str):
            raise AssertionRejected("jti is not a string")

        iat, exp = claims.get("iat"), claims.get("exp")
        if isinstance(iat, bool) or isinstance(exp, bool):
            raise AssertionRejected("iat and exp must be integers")
        if not isinstance(iat, int) or not isinstance(exp, int):
            raise AssertionRejected("iat and exp must be integers")
        now = self._clock()
        if iat > now + CLOCK_SKEW_S:
            raise AssertionRejected("issued in the future")
        if exp <= now - CLOCK_SKEW_S:
            raise AssertionRejected("expired")
        if not 0 < exp - iat <= MAX_LIFETIME_S:
            raise AssertionRejected("lifetime out of range")

        if claims.get("mth") != method.upper():
            raise AssertionRejected("method does not match")
        tgt = claims.get("tgt")
        try:
            if not isinstance(tgt, str) or tgt.encode("utf-8") != target:
                raise AssertionRejected("target does not match")
        except UnicodeEncodeError:
            raise AssertionRejected("target does not match") from None

        sub = claims.get("sub")
        if not isinstance(sub, str) or not USER_ID.fullmatch(sub):
            raise AssertionRejected("sub is not a user id")
        if user_header is not None and user_header != sub:
            raise AssertionRejected("X-User-Id does not match sub")
        return sub


def _unauthorized() -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail="missing or invalid gateway assertion")


def _only_header(request: Request, name: str) -> str | None:
    values = request.headers.getlist(name)
    if len(values) > 1:
        raise AssertionRejected(f"{name} sent more than once")
    return values[0] if values else None


async def acting_user(request: Request) -> str:
    """FastAPI dependency for every /api route: the verified user, who must own the path.

    It runs before the body is parsed (routes read their body through dependencies that depend on
    this one), so a request without a valid assertion learns nothing, not even about its input.
    """
    verifier: AssertionVerifier = request.app.state.verifier
    try:
        token = _only_header(request, ASSERTION_HEADER)
        if token is None:
            raise AssertionRejected("no assertion")
        user = verifier.verify(
            token,
            request.method,
            request_target(request.scope),
            _only_header(request, USER_HEADER),
        )
    except AssertionRejected as exc:
        logger.info("gateway assertion rejected: %s", exc)
        raise _unauthorized() from None
    if request.path_params.get("user_id") != user:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="the path's user is not the acting user")
    return user
