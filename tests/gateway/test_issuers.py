"""Which issuer verifies a token (gateway/auth/verifier.py): never chosen by the token.

HS256 tokens are tried against the HS256 issuers' secrets only; other algorithms look `kid` up in each JWKS
issuer's key set, and the key must be bound to exactly that algorithm; a token belongs to an issuer only if
that issuer's key verifies it *and* it carries the issuer's `iss` and `aud`.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gateway.auth.verifier import Identity, InvalidToken, TokenVerifier, TrustedIssuer

MAIN = b"issuer-test-main-secret-" + b"m" * 24
JOBS = b"issuer-test-jobs-secret-" + b"j" * 24
ED = ed25519.Ed25519PrivateKey.generate()
EC = ec.generate_private_key(ec.SECP256R1())


class Keys:
    """A key set as the JWKS cache serves it: keys by kid, each bound to one algorithm."""

    def __init__(self, **keys: tuple[Any, str]) -> None:
        self.keys = {
            kid: jwt.PyJWK({**json.loads(jwt.get_algorithm_by_name(alg).to_jwk(private.public_key())), "kid": kid}, alg)
            for kid, (private, alg) in keys.items()
        }
        self.lookups: list[str] = []

    async def key_for(self, kid: str) -> jwt.PyJWK | None:
        self.lookups.append(kid)
        return self.keys.get(kid)


def signed(key: Any, alg: str, kid: str | None = None, **claims: Any) -> str:
    payload = {"sub": "alice", "exp": int(time.time()) + 600, **claims}
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid} if kid else None)


def verifier(*issuers: TrustedIssuer) -> TokenVerifier:
    return TokenVerifier(issuers=issuers, leeway_s=30, max_ttl_s=None, cache_size=0)


async def verdict(checker: TokenVerifier, token: str) -> Identity | str:
    try:
        return await checker.verify(token)
    except InvalidToken as exc:
        return str(exc)


async def test_two_issuers_sharing_a_key_set_are_told_apart_by_iss() -> None:
    shared = Keys(k1=(ED, "EdDSA"))
    checker = verifier(
        TrustedIssuer("staff", keys=shared, issuer="https://staff.example"),
        TrustedIssuer("customers", keys=shared, issuer="https://customers.example"),
    )
    staff = await verdict(checker, signed(ED, "EdDSA", "k1", iss="https://staff.example", role="admin"))
    customers = await verdict(checker, signed(ED, "EdDSA", "k1", iss="https://customers.example"))
    assert isinstance(staff, Identity) and isinstance(customers, Identity)
    assert (staff.issuer, customers.issuer) == ("staff", "customers")
    assert staff.claims["role"] == "admin" and staff.user_id == "alice"
    assert await verdict(checker, signed(ED, "EdDSA", "k1", iss="https://other.example")) == "InvalidIssuerError"
    assert await verdict(checker, signed(ED, "EdDSA", "k1")) == "MissingRequiredClaimError"
    # an issuer that asks for no `iss` still owns tokens without one, whoever else shares its key set
    lenient = verifier(
        TrustedIssuer("staff", keys=shared, issuer="https://staff.example"), TrustedIssuer("any", keys=shared)
    )
    anyone = await verdict(lenient, signed(ED, "EdDSA", "k1"))
    assert isinstance(anyone, Identity) and anyone.issuer == "any"


async def test_hs256_tokens_are_tried_against_hs256_secrets_only() -> None:
    keys = Keys(k1=(ED, "EdDSA"))
    checker = verifier(TrustedIssuer("jwks", keys=keys), TrustedIssuer("jobs", hmac_secrets=(JOBS,)))
    jobs = await verdict(checker, signed(JOBS, "HS256", "k1"))
    assert isinstance(jobs, Identity) and jobs.issuer == "jobs"
    assert keys.lookups == []  # an HS256 token's kid is never looked up
    only_jwks = verifier(TrustedIssuer("jwks", keys=keys))
    assert await verdict(only_jwks, signed(JOBS, "HS256")) == "algorithm 'HS256' is not accepted"


async def test_each_hs256_issuer_is_its_own_secrets_and_its_own_claims() -> None:
    checker = verifier(
        TrustedIssuer("main", hmac_secrets=(MAIN,), audience=("tasks",)),
        TrustedIssuer("jobs", hmac_secrets=(JOBS,), issuer="jobs-runner"),
    )
    main = await verdict(checker, signed(MAIN, "HS256", aud="tasks"))
    jobs = await verdict(checker, signed(JOBS, "HS256", iss="jobs-runner"))
    assert isinstance(main, Identity) and main.issuer == "main"
    assert isinstance(jobs, Identity) and jobs.issuer == "jobs"
    # signed by jobs but shaped like main's: jobs's key, so jobs's rules — refused
    assert await verdict(checker, signed(JOBS, "HS256", aud="tasks")) == "MissingRequiredClaimError"
    assert await verdict(checker, signed(JOBS, "HS256", iss="main", aud="tasks")) == "InvalidIssuerError"
    assert await verdict(checker, signed(MAIN, "HS256")) == "MissingRequiredClaimError"
    assert await verdict(checker, signed(MAIN, "HS256", aud="jobs")) == "InvalidAudienceError"
    assert await verdict(checker, signed(b"another-secret-entirely-" + b"x" * 24, "HS256")) == (
        "signature does not verify"
    )


async def test_an_asymmetric_token_must_name_the_algorithm_its_key_is_bound_to() -> None:
    checker = verifier(TrustedIssuer("a", keys=Keys(k1=(ED, "EdDSA"))), TrustedIssuer("b", keys=Keys(k2=(EC, "ES256"))))
    assert isinstance(await verdict(checker, signed(EC, "ES256", "k2")), Identity)
    assert await verdict(checker, signed(EC, "ES256", "k1")) == "algorithm does not match the key"
    assert await verdict(checker, signed(EC, "ES256", "k3")) == "unknown key id"
    assert await verdict(checker, signed(ED, "EdDSA")) == "algorithm 'EdDSA' is not accepted"  # no kid


@pytest.mark.parametrize("alg", ["HS256", "EdDSA"])
async def test_the_verdict_is_remembered_with_its_issuer_and_claims(alg: str) -> None:
    keys = Keys(k1=(ED, "EdDSA"))
    checker = TokenVerifier(
        issuers=(TrustedIssuer("main", hmac_secrets=(MAIN,)), TrustedIssuer("jwks", keys=keys)),
        leeway_s=30,
        max_ttl_s=None,
        cache_size=8,
    )
    token = signed(MAIN, "HS256", org_ids=["acme"]) if alg == "HS256" else signed(ED, "EdDSA", "k1", org_ids=["acme"])
    first = await checker.verify(token)
    again = checker.remembered(token)
    assert again is first and first.issuer == ("main" if alg == "HS256" else "jwks")
    assert first.claims["org_ids"] == ["acme"]
    with pytest.raises(TypeError):
        first.claims["org_ids"] = []  # type: ignore[index]  # shared through the cache: read-only
