"""Micro-benchmark: what one pyjwt verification costs per algorithm (µs per `jwt.decode`), and what the
gateway's cached verdict costs without and with the revocation check (GATEWAY_REVOCATION_URL).

The first is the price a proxy pays per request without a verified-token cache; keys are loaded once, as a
gateway with a cached JWKS would hold them. The second is the gateway's hot path once a token has been
verified. Run pinned: `taskset -c 0 python -m bench.tokens_micro`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

if not __package__:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # `python bench/tokens_micro.py`

from bench import micro, tokens
from gateway.auth.revocations import FeedPage, RevocationList
from gateway.auth.verifier import TokenVerifier, TrustedIssuer

# Revoked sessions and users held while the cached verdict is checked: a busy hour's sign-outs.
REVOCATIONS_HELD = 10_000


def _keys() -> dict[str, tuple[Any, Any]]:
    """Signing key and verifying key per algorithm."""
    secret = tokens.new_secret()
    ed = ed25519.Ed25519PrivateKey.generate()
    es = ec.generate_private_key(ec.SECP256R1())
    rs = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "HS256": (secret, secret),
        "EdDSA": (ed, ed.public_key()),
        "ES256": (es, es.public_key()),
        "RS256": (rs, rs.public_key()),
    }


def verify_costs(seconds_per_alg: float = 0.5) -> dict[str, float]:
    """µs per pyjwt verification, per algorithm."""
    costs = {}
    sub = tokens.user_id(0)
    for alg, (signing, verifying) in _keys().items():
        token = jwt.encode({"sub": sub, "iat": 0, "exp": 2**31 - 1}, signing, algorithm=alg)

        def verify(token: str = token, verifying: Any = verifying, alg: str = alg) -> None:
            jwt.decode(token, verifying, algorithms=[alg])

        costs[alg] = micro.best_us(verify, seconds_per_alg)
    return costs


def _revocations(sub: str) -> RevocationList:
    """REVOCATIONS_HELD entries, none revoking the measured token, one a cut-off on its user: the longest
    path through the check for a token that passes."""
    held = RevocationList(leeway_s=30)
    sessions = {f"session-{i}": 2.0**31 for i in range(REVOCATIONS_HELD // 2)}
    users = {f"user-{i}": (0.0, 2.0**31) for i in range(REVOCATIONS_HELD // 2 - 1)}
    held.merge(FeedPage("c", False, sessions, {**users, sub: (1.0, 2.0**31)}))
    held.loaded = True
    return held


def cached_check_costs(seconds_per_case: float = 0.5) -> dict[str, float]:
    """µs per verdict answered from the gateway's verified-token cache, without and with revocations."""
    secret = tokens.new_secret()
    sub = tokens.user_id(0)
    token = jwt.encode({"sub": sub, "sid": "session-x", "iat": 2, "exp": 2**31 - 1}, secret, algorithm="HS256")
    cases = {
        "cached verdict": None,
        f"cached verdict + revocation check ({REVOCATIONS_HELD:,} held)": _revocations(sub),
    }
    costs = {}
    for name, revocations in cases.items():
        verifier = TokenVerifier(
            issuers=(TrustedIssuer("default", hmac_secrets=(secret.encode(),)),),
            leeway_s=30,
            max_ttl_s=None,
            cache_size=16,
            revocations=revocations,
        )
        asyncio.run(verifier.verify(token))
        assert verifier.remembered(token) is not None

        def check(verifier: TokenVerifier = verifier) -> None:
            verifier.remembered(token)

        costs[name] = micro.best_us(check, seconds_per_case)
    return costs


if __name__ == "__main__":
    micro.main(__doc__, lambda: {**verify_costs(), **cached_check_costs()}, "check")
