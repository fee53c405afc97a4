"""`policy explain` in-process: which route, each check, the answer, the upstream request; the token's
verification status said plainly, and neither the token nor the assertion ever printed."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest

from gateway.policy.default import default_policy
from gateway.policy.explain import Explanation, Presented, explain, inspect_token
from gateway.policy.file import parse_policy
from gateway.policy.match import Router
from gateway.policy.model import Policy
from tests.gateway.test_jwks import ISSUER as JWKS_ISSUER
from tests.gateway.test_jwks import Issuer as JwksIssuer
from tests.gateway.test_jwks import issuer  # noqa: F401 - the JWKS endpoint fixture
from tests.gateway_fixtures import JWT_SECRET, gateway_settings, make_token

REPO = Path(__file__).resolve().parents[2]
JOBS_SECRET = "jobs-secret-" + "j" * 30
SETTINGS = gateway_settings("http://127.0.0.1:8001")


def multi(jwks_url: str = "http://127.0.0.1:9/jwks") -> Policy:
    """deploy/policy.multi.example.yaml, its Better Auth issuer pointed at `jwks_url`."""
    text = (REPO / "deploy" / "policy.multi.example.yaml").read_text()
    text = text.replace("http://127.0.0.1:3000/api/auth/jwks", jwks_url)
    text = text.replace('"http://127.0.0.1:3000"', f'"{JWKS_ISSUER}"')
    return parse_policy(
        text,
        source="policy.multi.example.yaml",
        environ={"JOBS_JWT_SECRET": JOBS_SECRET},
        fallback_issuer=None,
        reserved_secrets=SETTINGS.internal_secrets,
    )


def lines(result: Explanation) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in result.lines:
        step, _, text = line.partition(" ")
        out.setdefault(step, []).append(text.strip())
    return out


def present(claims: dict[str, Any], source: str | None = "better-auth", verified: bool | None = True) -> Presented:
    return Presented(claims, source, verified, "ok: verified (test)")


ADMIN = {"sub": "alice", "org_ids": ["acme"], "role": "admin", "email": "alice@x.example"}


def test_a_forwarded_request_shows_the_route_checks_and_the_upstream_request() -> None:
    result = explain(Router(multi()), "GET", "/orgs/acme/notes?limit=5", present(ADMIN))
    shown = lines(result)
    assert result.status is None
    assert shown["route"] == ["route 4 (/orgs/{org_id}/notes) matched (org_id=acme) → upstream notes"]
    assert shown["issuer"] == ["ok: better-auth (this route accepts: better-auth)"]
    assert shown["rule"] == [
        'ok: match {org_id} = claim org_ids (token has ["acme"])',
        'ok: require claim role in [admin, owner] (token has ["admin"])',
    ]
    assert shown["upstream"] == ["GET http://127.0.0.1:9000/orgs/acme/notes?limit=5"]
    assert "X-User-Id: alice" in shown["header"] and "X-User-Email: alice@x.example" in shown["header"]
    assert any('X-Gateway-Assertion: <redacted: aud "notes"' in h for h in shown["header"])


@pytest.mark.parametrize(
    ("method", "target", "claims", "source", "status", "failed"),
    [
        ("GET", "/orgs/acme/notes", {**ADMIN, "role": "member"}, "better-auth", 403, "rule"),
        ("GET", "/orgs/globex/notes", ADMIN, "better-auth", 403, "rule"),
        ("GET", "/orgs/acme/notes", ADMIN, "jobs", 401, "issuer"),
        ("DELETE", "/orgs/acme/notes", ADMIN, "better-auth", 405, "method"),
        ("GET", "/orgs/acme", ADMIN, "better-auth", 404, None),
        ("GET", "/orgs/acme/../x/notes", ADMIN, "better-auth", 400, "target"),
    ],
)
def test_a_refused_request_names_the_failed_check_and_the_status(
    method: str, target: str, claims: dict[str, Any], source: str, status: int, failed: str | None
) -> None:
    result = explain(Router(multi()), method, target, present(claims, source))
    assert result.status == status
    assert lines(result)["answer"][0].startswith(str(status))
    assert "upstream" not in lines(result)
    if failed is not None:
        assert any(text.startswith(("FAILED", "REFUSED")) for text in lines(result)[failed])


def test_auth_none_forwards_without_identity_and_a_missing_token_is_401() -> None:
    router = Router(multi())
    public = explain(router, "GET", "/status", None)
    assert public.status is None
    assert not any("X-User-Id" in h for h in lines(public)["header"])
    assert any("no user" in h for h in lines(public)["header"])
    missing = explain(router, "GET", "/jobs/" + str(uuid.uuid4()), None)
    assert missing.status == 401


def test_an_unknown_issuer_judges_the_rules_and_says_which_issuers_would_do() -> None:
    result = explain(Router(multi()), "GET", "/orgs/acme/notes", present(ADMIN, source=None, verified=None))
    assert result.status is None
    assert lines(result)["issuer"][0].startswith("? cannot tell")
    assert lines(result)["answer"] == ["forwarded if the token is from one of: better-auth"]
    refused = explain(Router(multi()), "GET", "/orgs/acme/notes", present({}, source=None, verified=None))
    assert refused.status == 403


def test_options_is_the_gateways_preflight() -> None:
    result = explain(Router(default_policy(SETTINGS)), "OPTIONS", "/api/alice/tasks", None)
    assert result.status == 204 and "upstream" not in lines(result)


async def test_an_hs256_token_is_verified_with_its_issuers_secret() -> None:
    policy = default_policy(SETTINGS)
    good = await inspect_token(policy, make_token("alice"), issuer_hint=None, settings=SETTINGS)
    assert (good.issuer, good.verified, good.claims["sub"]) == ("default", True, "alice")
    forged = await inspect_token(policy, make_token("alice", secret="x" * 40), issuer_hint=None, settings=SETTINGS)
    assert (forged.issuer, forged.verified) == ("default", False)
    assert forged.note.startswith("FAILED")
    result = explain(Router(policy), "GET", "/api/alice/tasks", forged)
    assert result.status == 401 and lines(result)["answer"] == ["401 invalid_token, nothing forwarded"]
    expired = await inspect_token(policy, make_token("alice", ttl=-3600), issuer_hint=None, settings=SETTINGS)
    assert expired.verified is False
    garbage = await inspect_token(policy, "not.a.jwt", issuer_hint=None, settings=SETTINGS)
    assert garbage.verified is False


async def test_the_issuer_is_told_by_iss_and_algorithm_or_named() -> None:
    policy = multi()
    now = int(time.time())
    job = jwt.encode({"sub": "svc", "exp": now + 60}, JOBS_SECRET, algorithm="HS256")
    picked = await inspect_token(policy, job, issuer_hint=None, settings=SETTINGS)
    assert (picked.issuer, picked.verified) == ("jobs", True)
    named = await inspect_token(policy, job, issuer_hint="better-auth", settings=SETTINGS)
    assert (named.issuer, named.verified) == ("better-auth", False)  # a JWKS issuer does not accept HS256


async def test_a_jwks_token_is_verified_with_the_issuers_key_set(issuer: JwksIssuer) -> None:  # noqa: F811
    issuer.add("k1", "EdDSA")
    policy = multi(issuer.url)
    token = issuer.token("k1", org_ids=["acme"], role="owner")
    verified = await inspect_token(policy, token, issuer_hint=None, settings=SETTINGS)
    assert (verified.issuer, verified.verified) == ("better-auth", True)
    assert verified.note == "ok: verified by issuer better-auth"
    assert explain(Router(policy), "POST", "/orgs/acme/notes", verified).status is None
    other = JwksIssuer()
    other.add("k1", "EdDSA")
    forged = await inspect_token(policy, other.token("k1"), issuer_hint=None, settings=SETTINGS)
    assert forged.verified is False


async def test_an_unreachable_jwks_means_claims_shown_unverified_and_said_so() -> None:
    policy = multi("http://127.0.0.1:9/jwks")  # the discard port: nothing listens
    other = JwksIssuer()
    other.add("k1", "EdDSA")
    result = await inspect_token(policy, other.token("k1"), issuer_hint=None, settings=SETTINGS)
    assert (result.issuer, result.verified) == ("better-auth", None)
    assert "WITHOUT verifying the signature" in result.note


def test_the_token_and_secrets_are_never_printed() -> None:
    token = make_token("alice")
    for target in ("/api/alice/tasks", "/api/bob/tasks"):
        claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
        result = explain(Router(default_policy(SETTINGS)), "GET", target, present(claims, "default"))
        text = "\n".join(result.lines)
        assert token not in text and token.split(".")[2] not in text and JWT_SECRET not in text
