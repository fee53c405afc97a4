"""Gateway-only contract for a policy file: two recording upstreams, two issuers, every semantic of
docs/policy.md asserted on what each upstream received — or that it received nothing.

The policy: the task API on `task-service` for tokens of issuer `main`; an organisation's notes on `notes`
for `main` tokens whose `org_ids` hold the org and whose `role` is owner or admin, with two claims copied
into headers; a jobs API on `notes` for `jobs` tokens only; a public status page on `notes`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import ClientResponse, ClientSession

from taskgate_assertion.verify import AssertionRejected, AssertionVerifier, Verified
from tests.gateway_fixtures import (
    INTERNAL_SECRET,
    GatewayFactory,
    GatewayUnderTest,
    Received,
    Recorder,
    bearer,
    make_token,
    recording_upstream,
)

MAIN_SECRET = "policy-test-main-issuer-secret-" + "m" * 24
JOBS_SECRET = "policy-test-jobs-issuer-secret-" + "j" * 24
JOB = "7c9e6679-7425-40de-944b-e07fc1f90ae7"

POLICY = """
upstreams:
  task-service: {{url: "{tasks}"}}
  notes: {{url: "{notes}"}}
issuers:
  main: {{secret_env: POLICY_TEST_MAIN_SECRET}}
  jobs: {{secret_env: POLICY_TEST_JOBS_SECRET}}
routes:
  - path: /api/{{user_id}}/tasks
    methods: [GET, POST]
    upstream: task-service
    issuers: [main]
    match: {{user_id: sub}}
  - path: /orgs/{{org_id}}/notes
    methods: [GET, POST]
    upstream: notes
    issuers: [main]
    match: {{org_id: org_ids}}
    require: {{role: [owner, admin]}}
    headers: {{X-User-Email: email, X-User-Role: role}}
  - path: /jobs/{{job_id:uuid}}
    methods: [GET]
    upstream: notes
    issuers: [jobs]
  - path: /status
    methods: [GET]
    upstream: notes
    auth: none
"""


def main_token(sub: str = "alice", **claims: Any) -> str:
    return make_token(sub, secret=MAIN_SECRET, **claims)


def admin_of(*orgs: str, **claims: Any) -> str:
    return main_token(org_ids=list(orgs), role="admin", email="alice@example.com", **claims)


def jobs_token() -> str:
    return make_token("nightly-export", secret=JOBS_SECRET)


def assertion_claims(got: Received, audience: str) -> dict[str, Any]:
    """The gateway assertion the upstream received, verified for `audience` as docs/contract.md says."""
    [value] = got.header("X-Gateway-Assertion")
    claims: dict[str, Any] = jwt.decode(
        value, INTERNAL_SECRET, algorithms=["HS256"], audience=audience, issuer="taskgate-gateway"
    )
    return claims


@pytest.fixture
async def notes() -> AsyncIterator[Recorder]:
    async with recording_upstream() as rec:
        yield rec


@pytest.fixture
def policy_gateway(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    recorder: Recorder,
    notes: Recorder,
    start_gateway: GatewayFactory,
) -> GatewayFactory:
    """Starts a gateway with the two-upstream policy (`recorder` is the task service, `notes` the other)."""
    monkeypatch.setenv("POLICY_TEST_MAIN_SECRET", MAIN_SECRET)
    monkeypatch.setenv("POLICY_TEST_JOBS_SECRET", JOBS_SECRET)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(tasks=recorder.url, notes=notes.url))

    async def start(**overrides: Any) -> GatewayUnderTest:
        return await start_gateway(policy_file=policy, jwt_secret=None, **overrides)

    return start


async def send(gw: GatewayUnderTest, method: str, path: str, headers: dict[str, str] | None = None) -> ClientResponse:
    async with ClientSession() as client, client.request(method, gw.make_url(path), headers=headers) as resp:
        await resp.read()
        return resp


async def test_each_route_reaches_its_own_upstream_only(
    policy_gateway: GatewayFactory, recorder: Recorder, notes: Recorder
) -> None:
    gw = await policy_gateway()
    assert (await send(gw, "GET", "/api/alice/tasks", bearer(main_token()))).status == 200
    assert [(r.method, r.raw_path) for r in recorder.received] == [("GET", "/api/alice/tasks")]
    assert notes.received == []
    assert (await send(gw, "GET", "/orgs/acme/notes?page=2", bearer(admin_of("acme")))).status == 200
    assert (await send(gw, "GET", f"/jobs/{JOB}", bearer(jobs_token()))).status == 200
    assert [(r.method, r.raw_path) for r in notes.received] == [
        ("GET", "/orgs/acme/notes?page=2"),
        ("GET", f"/jobs/{JOB}"),
    ]
    assert len(recorder.received) == 1


async def test_the_assertion_names_the_upstream_it_was_made_for(
    policy_gateway: GatewayFactory, recorder: Recorder, notes: Recorder
) -> None:
    gw = await policy_gateway()
    await send(gw, "GET", "/api/alice/tasks", bearer(main_token()))
    await send(gw, "GET", "/orgs/acme/notes", bearer(admin_of("acme")))
    [at_tasks], [at_notes] = recorder.received, notes.received
    assert assertion_claims(at_tasks, "task-service")["aud"] == "task-service"
    assert assertion_claims(at_notes, "notes")["aud"] == "notes"
    # captured at one upstream, refused by the other
    with pytest.raises(jwt.InvalidAudienceError):
        assertion_claims(at_notes, "task-service")
    with pytest.raises(jwt.InvalidAudienceError):
        assertion_claims(at_tasks, "notes")
    assert assertion_claims(at_notes, "notes")["tgt"] == "/orgs/acme/notes"


async def test_auth_none_forwards_no_credentials_and_no_identity(
    policy_gateway: GatewayFactory, notes: Recorder
) -> None:
    gw = await policy_gateway()
    spoofed = {
        **bearer(main_token()),
        "X-User-Id": "mallory",
        "X-User-Email": "mallory@example.com",
        "X-User-Role": "owner",
        "X-Gateway-Assertion": "forged",
    }
    assert (await send(gw, "GET", "/status", spoofed)).status == 200
    assert (await send(gw, "GET", "/status")).status == 200  # no token needed
    assert (await send(gw, "GET", "/status", {"Authorization": "Bearer not-a-jwt"})).status == 200  # nor checked
    for got in notes.received:
        names = got.names()
        assert {"authorization", "x-user-id", "x-user-email", "x-user-role"}.isdisjoint(names)
        claims = assertion_claims(got, "notes")  # still proof that it came through the gateway ...
        assert "sub" not in claims  # ... for no user
        assert (claims["mth"], claims["tgt"]) == ("GET", "/status")


@pytest.mark.parametrize(
    "token",
    [
        admin_of("globex"),  # not this org
        main_token(org_ids=["acme"], role="viewer"),  # not a required role
        main_token(org_ids=["acme"]),  # no role at all
        main_token(role="admin"),  # no org_ids claim
        main_token(org_ids="acme,globex", role="admin"),  # a comma list is one value, not a list
        main_token(org_ids=[["acme"]], role="admin"),  # a claim of another shape never matches
    ],
)
async def test_match_and_require_refuse_with_403_and_forward_nothing(
    policy_gateway: GatewayFactory, recorder: Recorder, notes: Recorder, token: str
) -> None:
    gw = await policy_gateway()
    resp = await send(gw, "GET", "/orgs/acme/notes", bearer(token))
    assert resp.status == 403
    assert "WWW-Authenticate" not in resp.headers
    assert notes.received == [] and recorder.received == []


@pytest.mark.parametrize(
    ("path", "token"),
    [
        ("/orgs/acme/notes", jobs_token()),  # a valid jobs token: the route accepts main only
        (f"/jobs/{JOB}", admin_of("acme")),  # a valid main token: the route accepts jobs only
        ("/api/nightly-export/tasks", jobs_token()),  # even when the rules would hold
    ],
)
async def test_a_token_from_an_issuer_the_route_does_not_list_is_401_invalid_token(
    policy_gateway: GatewayFactory, recorder: Recorder, notes: Recorder, path: str, token: str
) -> None:
    gw = await policy_gateway()
    resp = await send(gw, "GET", path, bearer(token))
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="taskgate", error="invalid_token"'
    assert notes.received == [] and recorder.received == []


async def test_a_token_of_no_configured_issuer_is_401(policy_gateway: GatewayFactory, notes: Recorder) -> None:
    """The settings' GATEWAY_JWT_SECRET is no issuer once the file defines its own."""
    gw = await policy_gateway()
    resp = await send(gw, "GET", "/orgs/acme/notes", bearer(make_token(org_ids=["acme"], role="admin")))
    assert resp.status == 401
    assert notes.received == []


async def test_claim_headers_are_copied_and_client_copies_dropped(
    policy_gateway: GatewayFactory, notes: Recorder
) -> None:
    gw = await policy_gateway()
    spoofed = {"X-User-Email": "mallory@example.com", "X-User-Role": "owner", "X-User-Id": "mallory"}
    await send(gw, "GET", "/orgs/acme/notes", {**bearer(admin_of("acme")), **spoofed})
    # no email claim, and a role list: the header is absent, never empty and never the client's
    listed = main_token(org_ids=["acme"], role=["admin", "billing"])
    await send(gw, "GET", "/orgs/acme/notes", {**bearer(listed), **spoofed})
    first, second = notes.received
    assert first.header("X-User-Email") == ["alice@example.com"]
    assert first.header("X-User-Role") == ["admin"]
    assert first.header("X-User-Id") == ["alice"]  # always the token's sub on an authenticated route
    assert second.header("X-User-Email") == []
    assert second.header("X-User-Role") == ["admin, billing"]
    assert second.header("X-User-Id") == ["alice"]
    assert assertion_claims(second, "notes")["sub"] == "alice"
    # The copied headers are bound into the assertion: the values sent, and null for the one not sent.
    assert assertion_claims(first, "notes")["hdr"] == {"x-user-email": "alice@example.com", "x-user-role": "admin"}
    assert assertion_claims(second, "notes")["hdr"] == {"x-user-email": None, "x-user-role": "admin, billing"}


def _verify_at_the_upstream(got: Received, changed: dict[str, str | None]) -> Verified:
    """What the shared verifier says of the request the upstream received, with `changed` headers changed on
    the way (a value replaces, None removes) — as an on-path tamperer between gateway and upstream would."""
    headers = {name.lower(): value for name, value in ((n.decode(), v.decode()) for n, v in got.raw_headers)}
    headers.update((name.lower(), value) for name, value in changed.items() if value is not None)
    for name, value in changed.items():
        if value is None:
            headers.pop(name.lower(), None)
    [token] = got.header("X-Gateway-Assertion")
    verifier = AssertionVerifier([INTERNAL_SECRET.encode()], "notes")
    return verifier.verify(
        token, got.method, got.raw_path.encode(), got.body, headers.get("x-user-id"), headers=headers.get
    )


async def test_claim_headers_changed_on_the_way_are_refused_by_the_upstream(
    policy_gateway: GatewayFactory, notes: Recorder
) -> None:
    """A header the policy copies cannot be changed, dropped or added between the gateway and its upstream
    without the upstream's verifier refusing the request: the assertion's `hdr` binds them."""
    gw = await policy_gateway()
    await send(gw, "GET", "/orgs/acme/notes", bearer(main_token(org_ids=["acme"], role="admin")))
    [got] = notes.received
    assert _verify_at_the_upstream(got, {}).claim_headers == {"x-user-role": "admin"}
    for changed in ({"X-User-Role": "owner"}, {"X-User-Role": None}, {"X-User-Email": "mallory@example.com"}):
        with pytest.raises(AssertionRejected):
            _verify_at_the_upstream(got, changed)


async def test_unrouted_paths_are_404_and_unlisted_methods_405_with_allow(
    policy_gateway: GatewayFactory, recorder: Recorder, notes: Recorder
) -> None:
    gw = await policy_gateway()
    cases = [
        ("GET", "/orgs/acme/notes/1", 404),
        ("GET", "/jobs/not-a-uuid", 404),
        ("GET", "/jobs/7C9E6679-7425-40de-944b-e07fc1f90ae7", 404),  # mixed case is no canonical UUID
        ("GET", "/notes", 404),
        ("DELETE", "/orgs/acme/notes", 405),
        ("POST", "/status", 405),
        ("PUT", f"/jobs/{JOB}", 405),
    ]
    for method, path, status in cases:
        resp = await send(gw, method, path, bearer(admin_of("acme")))
        assert resp.status == status, (method, path)
    resp = await send(gw, "DELETE", "/orgs/acme/notes")  # 405 before any token check, as for the task API
    assert resp.status == 405 and resp.headers["Allow"] == "GET, POST"
    assert (await send(gw, "POST", "/status")).headers["Allow"] == "GET"
    assert notes.received == [] and recorder.received == []


async def test_readiness_names_every_upstream(
    policy_gateway: GatewayFactory, recorder: Recorder, notes: Recorder
) -> None:
    gw = await policy_gateway()
    async with ClientSession() as client:
        resp = await client.get(gw.make_url("/readyz"))
        assert resp.status == 200
        assert (await resp.json())["upstreams"] == {"task-service": True, "notes": True}
        assert notes.server is not None
        await notes.server.close()
        resp = await client.get(gw.make_url("/readyz"))
        assert resp.status == 503
        body = await resp.json()
    assert body["upstreams"] == {"task-service": True, "notes": False}
    assert body["checks"]["upstream"] is False


async def test_preflights_allow_the_policys_methods(policy_gateway: GatewayFactory, notes: Recorder) -> None:
    gw = await policy_gateway()
    headers = {"Origin": "http://app.example", "Access-Control-Request-Method": "GET"}
    resp = await send(gw, "OPTIONS", "/orgs/acme/notes", headers)
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Methods"] == "GET, POST"  # every method this policy forwards
    headers["Access-Control-Request-Method"] = "DELETE"  # allowed too, so the page reads the real 405
    assert (await send(gw, "OPTIONS", "/status", headers)).headers["Access-Control-Allow-Methods"] == (
        "GET, POST, DELETE"
    )
    assert notes.received == []


async def test_requests_are_labelled_by_route_template(policy_gateway: GatewayFactory, notes: Recorder) -> None:
    gw = await policy_gateway()
    await send(gw, "GET", "/orgs/acme/notes", bearer(admin_of("acme")))
    await send(gw, "GET", f"/jobs/{JOB}", bearer(jobs_token()))
    await send(gw, "GET", "/orgs/globex/notes", bearer(admin_of("acme")))
    counts = gw.pipeline.metrics._requests.counts
    assert counts[("/orgs/{org_id}/notes", "GET", "200", "ok")] == 1
    assert counts[("/jobs/{job_id}", "GET", "200", "ok")] == 1
    assert counts[("/orgs/{org_id}/notes", "GET", "403", "forbidden")] == 1
