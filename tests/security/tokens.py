"""Hand-made JWS for cases no JWT library will produce: raw JSON text, odd base64url, any signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from tests.gateway_fixtures import JWT_SECRET


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(signing_input: str, secret: str | bytes = JWT_SECRET) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return b64url(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())


def raw_token(header: str, payload: str, secret: str | bytes = JWT_SECRET) -> str:
    """A JWS from JSON *text* (so duplicate keys or odd numbers survive), signed HS256 with `secret`."""
    signing_input = f"{b64url(header.encode())}.{b64url(payload.encode())}"
    return f"{signing_input}.{hs256(signing_input, secret)}"


def token(header: dict[str, Any] | None = None, secret: str | bytes = JWT_SECRET, **claims: Any) -> str:
    """A correctly signed HS256 token with the given header and claims (defaults: alice, valid 15 minutes)."""
    now = int(time.time())
    body: dict[str, Any] = {"sub": "alice", "iat": now, "exp": now + 900}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not DROP}
    return raw_token(json.dumps(header or {"alg": "HS256", "typ": "JWT"}), json.dumps(body), secret)


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()
