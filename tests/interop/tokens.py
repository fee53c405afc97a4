"""Reading and altering Better Auth JWTs in tests, without trusting the gateway to do it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt

from tests.support.better_auth import Issuer


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of token, unverified."""
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def with_flipped_signature(token: str) -> str:
    """The same token with one signature character changed mid-way (the last one may be only padding bits)."""
    head, payload, signature = token.split(".")
    i = len(signature) // 2
    return f"{head}.{payload}.{signature[:i]}{'A' if signature[i] != 'A' else 'B'}{signature[i + 1 :]}"


def with_claims(token: str, **claims: Any) -> str:
    """token's header and signature around a payload with claims replaced: a forged token."""
    head, _, signature = token.split(".")
    payload = {**segments(token)[1], **claims}
    return f"{head}.{b64url(json.dumps(payload).encode())}.{signature}"


def hs256(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """Sign by hand, so a test can use keys pyjwt refuses (such as public key material)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    digest = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(digest)}"


def with_alg_none(token: str) -> str:
    """token with its header swapped for {"alg": "none"}; the signature stays, so the JWS form is intact."""
    _, payload, signature = token.split(".")
    return f"{b64url(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{payload}.{signature}"


def verify_like_a_relying_party(
    token: str, issuer: Issuer, shared_secret: str | None, *, verify_exp: bool = True
) -> dict[str, Any]:
    """Verify token independently of the gateway: with the shared secret, or the key its kid names."""
    header = jwt.get_unverified_header(token)
    if shared_secret is not None:
        key: Any = shared_secret
    else:
        key = jwt.PyJWKSet.from_dict(issuer.jwks())[header["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[header["alg"]],
        audience=issuer.origin,
        issuer=issuer.origin,
        options={"verify_exp": verify_exp},
    )
    return claims
