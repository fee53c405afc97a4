"""Gateway assertions signed as the gateway signs them, for tests that call an upstream directly."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.policy.assertion import AssertionSigner


def gateway_assertion(
    secret: bytes,
    audience: str,
    method: str,
    target: str,
    body: bytes,
    *,
    user: str | None = "alice",
    claim_headers: Mapping[str, str | None] | None = None,
    request_id: str = "r",
) -> str:
    return AssertionSigner(secret).sign(
        audience=audience,
        method=method,
        target=target,
        body=body,
        user_id=user,
        request_id=request_id,
        claim_headers=claim_headers,
    )
