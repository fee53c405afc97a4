"""Verifies the gateway assertion (docs/contract.md, "The gateway assertion").

The service trusts nothing a client could have sent: only a short-lived HS256 statement signed
with the internal secret, bound to this exact method, request target and user, says who is acting.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jwt
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


class AssertionVerifier:
    """Checks one assertion against the configured secrets; any of them may have signed it."""

    def __init__(self, secrets: Sequence[bytes], clock: Callable[[], float] = time.time) -> None:
        if not secrets:
            raise ValueError("at least one internal secret is required")
        self._secrets = tuple(secrets)
        self._clock = clock

    def _decode(self, token: str) -> dict[str, Any]:
        for secret in self._secrets:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    secret,
                    algorithms=["HS256"],  # never taken from the token
                    audience=AUDIENCE,
                    issuer=ISSUER,
                    leeway=0,
                    options={
                        "require": ["iss", "aud", "sub", "iat", "exp"],
                        "strict_aud": True,
                        # Time is checked below, to the contract's exact rules.
                        "verify_exp": False,
                        "verify_iat": False,
                        "verify_nbf": False,
                    },
                )
            except jwt.InvalidSignatureError:
                continue
            return claims
        raise AssertionRejected("signature does not verify with any internal secret")

    def verify(self, token: str, method: str, target: bytes, user_header: str | None) -> str:
        """Return the acting user id, or raise AssertionRejected."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("typ") != TYPE or header.get("alg") != "HS256":
                raise AssertionRejected("wrong typ or alg header")
            claims = self._decode(token)
        except AssertionRejected:
            raise
        except Exception as exc:  # fail closed: whatever pyjwt trips over is a rejection, not a 500
            raise AssertionRejected(f"malformed assertion ({type(exc).__name__})") from None

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
