"""Credentials the bench hands out: user tokens (HS256 or EdDSA via a JWKS) and gateway assertions.

They are minted here, with pyjwt, so every proxy under test verifies exactly the same bytes, and the
direct-to-service end-to-end case can present what the gateway would (docs/contract.md).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass, field

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from taskgate_assertion.format import MAX_LIFETIME_S, body_digest

TOKEN_TTL_S = 3600
# The longest lifetime a verifier accepts (docs/contract.md; the gateway's own is 10 s): a pool is signed right
# before a wrk run of at most 25 s and must stay valid to its end.
ASSERTION_TTL_S = MAX_LIFETIME_S
EDDSA_KID = "bench-ed25519"


def new_secret() -> str:
    """A fresh random secret per run, comfortably above the 32-byte minimum the services enforce."""
    return secrets.token_urlsafe(48)


def user_id(index: int) -> str:
    return f"bench-user-{index:05d}"


REVOKED_SESSIONS = 1000


def session_id(sub: str) -> str:
    return f"session-{sub}"


def _claims(sub: str, now: int, ttl_s: int = TOKEN_TTL_S) -> dict[str, object]:
    """Roughly the size and shape of a Better Auth JWT (with the session id the taskgateRevocations plugin adds),
    so parsing costs are realistic."""
    return {
        "sub": sub,
        "sid": session_id(sub),
        "email": f"{sub}@example.test",
        "name": f"Bench User {sub[-5:]}",
        "iat": now + min(ttl_s, 0) - 60,
        "exp": now + ttl_s,
    }


@dataclass(frozen=True)
class EdDSAKey:
    """An Ed25519 signing key and the JWKS document a gateway fetches to verify it."""

    private: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def jwks_json(self) -> str:
        jwk = json.loads(OKPAlgorithm.to_jwk(self.private.public_key()))
        jwk.update({"kid": EDDSA_KID, "alg": "EdDSA", "use": "sig"})
        return json.dumps({"keys": [jwk]})


def hs256_token(secret: str, sub: str, ttl_s: int = TOKEN_TTL_S) -> str:
    """`ttl_s` below zero mints an already expired token (for the rejection probes)."""
    return jwt.encode(_claims(sub, int(time.time()), ttl_s), secret, algorithm="HS256")


def unsigned_token(sub: str) -> str:
    """An `alg: none` token: every proxy under test must refuse it."""
    return jwt.encode(_claims(sub, int(time.time())), "", algorithm="none")


def eddsa_token(key: EdDSAKey, sub: str) -> str:
    return jwt.encode(_claims(sub, int(time.time())), key.private, algorithm="EdDSA", headers={"kid": EDDSA_KID})


def assertion_headers(internal_secret: str, sub: str, method: str, target: str, body: bytes = b"") -> dict[str, str]:
    """The headers the gateway would add, so the service can be called directly for comparison. Each call is a
    new assertion (its own `jti`): the service accepts each once."""
    now = int(time.time())
    rid = uuid.uuid4().hex
    claims = {
        "iss": "taskgate-gateway",
        "aud": "task-service",
        "sub": sub,
        "mth": method,
        "tgt": target,
        "bdy": body_digest(body),
        "iat": now,
        "exp": now + ASSERTION_TTL_S,
        "jti": rid,
        "rid": rid,
    }
    signed = jwt.encode(claims, internal_secret, algorithm="HS256", headers={"typ": "tg-assertion+jwt"})
    return {"X-Gateway-Assertion": signed, "X-User-Id": sub, "X-Request-Id": rid}


def revocation_feed(sessions: int = REVOKED_SESSIONS) -> str:
    """A revocation feed page (docs/better-auth.md) holding `sessions` ended sessions of users outside the token
    pool: the gateway checks every request against a set of realistic size, and no bench request is refused."""
    exp = int(time.time()) + TOKEN_TTL_S
    revoked = [{"sid": session_id(f"signed-out-{n:05d}"), "exp": exp} for n in range(sessions)]
    return json.dumps({"cursor": "bench-1", "more": False, "revoked": revoked})
