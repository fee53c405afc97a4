"""A test signer that plays the gateway: it signs assertions the way docs/contract.md describes,
over the request target exactly as httpx will put it on the wire and the body it will send.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from taskgate_assertion.format import body_digest

INTERNAL_SECRET = secrets.token_urlsafe(48)
ROTATED_SECRET = secrets.token_urlsafe(48)


def claims_for(method: str, target: str, user: str | None, body: bytes = b"", **overrides: Any) -> dict[str, Any]:
    """The gateway's claims for one request; an override of None drops that claim. Each call has a new `jti`."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "taskgate-gateway",
        "aud": "task-service",
        "sub": user,
        "mth": method,
        "tgt": target,
        "bdy": body_digest(body),
        "iat": now,
        "exp": now + 10,
        "jti": secrets.token_urlsafe(16),
        "rid": secrets.token_hex(8),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict[str, Any], secret: str = INTERNAL_SECRET, typ: str = "tg-assertion+jwt") -> str:
    return jwt.encode(claims, secret, algorithm="HS256", headers={"typ": typ})


class Api:
    """An httpx client that signs each request as the gateway would, unless told otherwise."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def request(
        self,
        method: str,
        url: str,
        *,
        user: str | None = "alice",
        assertion: str | Callable[[str, str], str] | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        request = self.client.build_request(method, url, headers=headers, **kwargs)
        target = request.url.raw_path.decode("ascii")
        if callable(assertion):
            request.headers["X-Gateway-Assertion"] = assertion(method, target)
        elif assertion is not None:
            request.headers["X-Gateway-Assertion"] = assertion
        elif user is not None:
            request.headers["X-Gateway-Assertion"] = sign(claims_for(method, target, user, request.read()))
            request.headers["X-User-Id"] = user
        return await self.client.send(request)

    async def create(self, user: str = "alice", **fields: Any) -> dict[str, Any]:
        body = {"title": "a task", **fields}
        response = await self.request("POST", f"/api/{user}/tasks", user=user, json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created
