"""The gateway assertion: proof for the task service that a request passed this gateway's checks.

It binds the user to the exact method and request target, so a captured assertion cannot be replayed for
another user, route or query; its short lifetime bounds replay of the identical request. Format:
docs/contract.md.
"""

from __future__ import annotations

import time

import jwt

ISSUER = "taskgate-gateway"
AUDIENCE = "task-service"
TYPE = "tg-assertion+jwt"
LIFETIME_S = 30
_HEADERS = {"typ": TYPE}


class AssertionSigner:
    """Signs assertions with the current internal secret (the first of the configured list)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, *, method: str, target: str, user_id: str, request_id: str) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user_id,
            "mth": method,
            "tgt": target,
            "iat": now,
            "exp": now + LIFETIME_S,
            "rid": request_id,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256", headers=_HEADERS)
