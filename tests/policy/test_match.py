"""Routing and authorisation outcomes: first match wins; 400/404/405/401/403 as domain errors; the default
policy routes exactly as the task API was routed in code before it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from gateway.auth.verifier import InvalidToken
from gateway.errors import status_of
from gateway.policy.default import default_policy
from gateway.policy.file import parse_policy
from gateway.policy.match import (
    Forbidden,
    IssuerNotAccepted,
    MethodNotAllowed,
    Router,
    authorise,
    check_method,
    claim_headers,
)
from gateway.policy.model import Issuer, Policy
from gateway.policy.paths import BadTarget, NotRouted, check_target
from tests.gateway_fixtures import gateway_settings
from tests.security.test_fuzz import targets as attack_targets
from tests.security.test_paths import CONFUSED

ISSUERS = (Issuer("ba", jwks_url="http://127.0.0.1:3000/jwks"), Issuer("jobs", jwks_url="http://127.0.0.1:4000/jwks"))
MULTI = """\
upstreams:
  tasks: {url: "http://127.0.0.1:8001"}
  notes: {url: "http://127.0.0.1:9000"}
issuers:
  ba: {jwks_url: "http://127.0.0.1:3000/jwks"}
  jobs: {jwks_url: "http://127.0.0.1:4000/jwks"}
routes:
  - {path: "/orgs/{org_id}/notes/mine", methods: [GET], upstream: notes, match: {org_id: org.id}}
  - path: /orgs/{org_id}/notes
    methods: [GET, POST]
    upstream: notes
    issuers: [ba]
    match: {org_id: org_ids}
    require: {role: [owner, admin]}
    headers: {X-User-Email: email, X-User-Role: role}
  - {path: "/orgs/{org_id}/{page}", methods: [GET], upstream: notes}
  - {path: "/{anything}/{org_id}/notes", methods: [DELETE], upstream: notes}
  - {path: "/jobs/{job:uuid}", methods: [GET], upstream: tasks, issuers: [jobs]}
  - {path: "/jobs/{name}", methods: [GET, POST], upstream: tasks, issuers: [jobs]}
  - {path: /status, methods: [GET], upstream: notes, auth: none}
  - {path: /, methods: [GET], upstream: notes, auth: none}
"""
UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def multi() -> Router:
    return Router(parse_policy(MULTI, source="multi.yaml", environ={}, fallback_issuer=None, reserved_secrets=()))


@pytest.mark.parametrize(
    ("target", "index", "params"),
    [
        ("/orgs/acme/notes/mine", 1, {"org_id": "acme"}),
        ("/orgs/acme/notes", 2, {"org_id": "acme"}),
        ("/orgs/acme/notes?limit=5", 2, {"org_id": "acme"}),
        ("/orgs/acme/files", 3, {"org_id": "acme", "page": "files"}),
        ("/teams/acme/notes", 4, {"anything": "teams", "org_id": "acme"}),
        (f"/jobs/{UUID}", 5, {"job": UUID}),
        ("/jobs/nightly", 6, {"name": "nightly"}),
        ("/status", 7, {}),
        ("/", 8, {}),
    ],
)
def test_the_first_route_in_file_order_whose_template_matches_wins(
    target: str, index: int, params: dict[str, str]
) -> None:
    located = multi().locate(target)
    assert (located.route.index, dict(located.params), located.forwarded) == (index, params, target)
    assert located.path == target.partition("?")[0]


@pytest.mark.parametrize(
    "target", ["/orgs", "/orgs/acme", "/orgs/acme/notes/mine/x", "/status/x", "/Status", "/jobs", "/a/b/c/d"]
)
def test_a_path_no_template_matches_is_not_routed(target: str) -> None:
    with pytest.raises(NotRouted):
        multi().locate(target)
    assert status_of(NotRouted) == 404


@pytest.mark.parametrize(
    "target", ["/orgs/acme/../x/notes", "/orgs/acme%2fx/notes", "/status//", "//status", "/st;x", "/status?a b"]
)
def test_the_strict_target_checks_hold_for_every_route(target: str) -> None:
    with pytest.raises(BadTarget):
        multi().locate(target)
    assert status_of(BadTarget) == 400


@pytest.mark.parametrize("spelling", ["/status?", "/status/", "/status/?"])
def test_an_empty_query_and_one_trailing_slash_locate_the_canonical_target(spelling: str) -> None:
    located = multi().locate(spelling)
    assert (located.route.template.text, located.forwarded, located.path) == ("/status", "/status", "/status")


def test_a_refused_target_is_never_cached_and_an_accepted_one_is() -> None:
    router = multi()
    for _ in range(2):
        with pytest.raises(NotRouted):
            router.locate("/nowhere")
    assert router.locate("/status") is router.locate("/status")
    assert router.locate.cache_info().currsize == 1
    shared = router.locate("/orgs/acme/notes")
    with pytest.raises(TypeError):
        shared.params["org_id"] = "globex"  # type: ignore[index]  # one request cannot change the next one's


def test_a_matched_template_without_the_method_is_405_with_allow() -> None:
    route = multi().locate("/orgs/acme/notes").route
    check_method(route, "POST")
    for method in ("DELETE", "PUT", "OPTIONS", "get", "HEAD"):
        with pytest.raises(MethodNotAllowed) as caught:
            check_method(route, method)
        assert caught.value.allow == ("GET", "POST")
    assert status_of(MethodNotAllowed) == 405


ADMIN: dict[str, Any] = {"sub": "alice", "org_ids": ["acme", "globex"], "role": "admin", "email": "a@x.example"}


@pytest.mark.parametrize(
    ("issuer", "claims", "outcome"),
    [
        ("ba", ADMIN, None),
        ("ba", {**ADMIN, "role": ["member", "owner"]}, None),
        ("ba", {**ADMIN, "org_ids": "acme"}, None),
        ("jobs", ADMIN, IssuerNotAccepted),  # a valid token, from an issuer this route does not list
        ("nobody", ADMIN, IssuerNotAccepted),
        ("jobs", {"sub": "x"}, IssuerNotAccepted),  # the issuer is checked before (and instead of) the rules
        ("ba", {**ADMIN, "org_ids": ["globex"]}, Forbidden),
        ("ba", {**ADMIN, "org_ids": []}, Forbidden),
        ("ba", {**ADMIN, "org_ids": [{"id": "acme"}]}, Forbidden),
        ("ba", {k: v for k, v in ADMIN.items() if k != "org_ids"}, Forbidden),
        ("ba", {**ADMIN, "role": "member"}, Forbidden),
        ("ba", {**ADMIN, "role": None}, Forbidden),
        ("ba", {**ADMIN, "role": True}, Forbidden),
        ("ba", {k: v for k, v in ADMIN.items() if k != "role"}, Forbidden),
    ],
)
def test_issuer_match_and_require_decide_401_or_403(
    issuer: str, claims: dict[str, Any], outcome: type[Exception] | None
) -> None:
    located = multi().locate("/orgs/acme/notes")
    if outcome is None:
        authorise(located.route, located.params, issuer, claims)
        return
    with pytest.raises(outcome) as caught:
        authorise(located.route, located.params, issuer, claims)
    assert "alice" not in str(caught.value) and "acme" not in str(caught.value)  # rule text, never claim values
    assert status_of(outcome) == (401 if outcome is IssuerNotAccepted else 403)


def test_an_issuer_not_accepted_is_an_invalid_token() -> None:
    assert issubclass(IssuerNotAccepted, InvalidToken)


def test_a_dotted_claim_reference_reads_nested_claims() -> None:
    located = multi().locate("/orgs/acme/notes/mine")
    authorise(located.route, located.params, "jobs", {"org": {"id": "acme"}})
    with pytest.raises(Forbidden):
        authorise(located.route, located.params, "jobs", {"org": {"id": "globex"}})
    with pytest.raises(Forbidden):
        authorise(located.route, located.params, "jobs", {"org": "acme"})


def test_routes_without_issuers_accept_every_issuer_and_auth_none_needs_nothing() -> None:
    router = multi()
    assert router.locate("/orgs/acme/files").route.issuers == ("ba", "jobs")
    status = router.locate("/status").route
    assert not status.auth_required and status.issuers == () and status.rules == () and status.headers == ()


def test_claim_headers_copy_present_claims_and_leave_missing_ones_absent() -> None:
    route = multi().locate("/orgs/acme/notes").route
    assert claim_headers(route, ADMIN) == [("X-User-Email", "a@x.example"), ("X-User-Role", "admin")]
    assert claim_headers(route, {"role": ["owner", "admin"]}) == [("X-User-Role", "owner, admin")]
    assert claim_headers(route, {"email": "a\r\nX-User-Id: bob", "role": ""}) == []


def test_many_routes_dispatch_to_the_same_route_a_linear_scan_finds() -> None:
    """The index by segment count and first literal must never change which route wins."""
    lines = ["upstreams: {u: {url: 'http://127.0.0.1:1'}}", "issuers: {i: {jwks_url: 'http://127.0.0.1:2'}}"]
    lines.append("routes:")
    shapes = ["/s{n}/{{a}}", "/{{a}}/s{n}", "/s{n}/{{a}}/{{b:int}}", "/{{a}}/{{b}}/s{n}", "/s{n}"]
    for n in range(10):
        for shape in shapes:
            lines.append(f"  - {{path: '{shape.format(n=n)}', methods: [GET], upstream: u}}")
    policy = parse_policy("\n".join(lines), source="many.yaml", environ={}, fallback_issuer=None, reserved_secrets=())
    router = Router(policy)
    assert len(policy.routes) == 50
    for target in ["/s3/x", "/x/s3", "/s3/s4", "/s4/s3", "/s1/x/7", "/a/b/s9", "/s9", "/s1/s2/s3", "/q/r", "/s3/x/y"]:
        linear = next((r for r in policy.routes if r.template.match(target) is not None), None)
        try:
            found = router.locate(target).route
        except NotRouted:
            found = None
        assert found == linear, target


# The default policy against today's routing: the same route (by its label), methods and user for every target,
# and the same refusal class for every target today refuses.
SETTINGS = gateway_settings("http://127.0.0.1:8001")
DEFAULT = Router(default_policy(SETTINGS))
CORPUS = [
    *(target.decode("latin-1") for target in CONFUSED),
    "/api/alice/tasks",
    "/api/alice/tasks/1",
    "/api/alice/tasks/123456789012345678",
    "/api/alice/tasks/1234567890123456789",
    "/api/alice/tasks/9/complete",
    "/api/alice/tasks/9/complete?x=1",
    "/api/a-_B9/tasks?status=all&q=%2Fa",
    "/api/alice/tasks/9/completed",
    "/api/alice/task",
    "/api/alice",
    "/api",
    "/",
    "/healthz",
    "/api/alice/tasks/" + "7" * 18 + "/complete",
    "/api/" + "a" * 128 + "/tasks",
]


# The task API's routing as gateway/paths.py wrote it in code before the policy (its `parse_target`): the
# default policy must route every target exactly so.
_BEFORE = re.compile(r"/api/([A-Za-z0-9_-]{1,128})/tasks(?:/([1-9][0-9]{0,17})(/complete)?)?")


def today(target: str) -> tuple[Any, ...]:
    try:
        path, forwarded = check_target(target)
    except BadTarget as exc:
        return (type(exc),)
    found = _BEFORE.fullmatch(path)
    if found is None:
        return (NotRouted,)
    if found.group(3):
        route, methods = "/api/{user_id}/tasks/{id}/complete", {"PATCH"}
    elif found.group(2):
        route, methods = "/api/{user_id}/tasks/{id}", {"GET", "PUT", "PATCH", "DELETE"}
    else:
        route, methods = "/api/{user_id}/tasks", {"GET", "POST"}
    return (route, frozenset(methods), found.group(1), path, forwarded)


def with_policy(target: str) -> tuple[Any, ...]:
    try:
        located = DEFAULT.locate(target)
    except (BadTarget, NotRouted) as exc:
        return (type(exc),)
    route = located.route
    return (route.template.label, route.methods, located.params["user_id"], located.path, located.forwarded)


@pytest.mark.parametrize("target", CORPUS)
def test_the_default_policy_routes_the_corpus_as_today(target: str) -> None:
    assert with_policy(target) == today(target)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(attack_targets)
def test_the_default_policy_routes_generated_attacks_as_today(target: str) -> None:
    assert with_policy(target) == today(target)


def test_the_default_policy_is_todays_api() -> None:
    policy: Policy = DEFAULT.policy
    assert [r.upstream.name for r in policy.routes] == ["task-service"] * 3
    assert policy.upstreams[0].url == "http://127.0.0.1:8001"
    (issuer,) = policy.issuers
    assert (issuer.name, issuer.secrets, issuer.jwks_url) == ("default", SETTINGS.user_secrets, None)
    assert all(r.issuers == ("default",) and [m.claim.text for m in r.match] == ["sub"] for r in policy.routes)
    jwks = default_policy(
        gateway_settings("http://u:1", jwt_secret=None, jwks_url="http://k/jwks", jwt_issuer="i", jwt_audience="a,b")
    )
    (issuer,) = jwks.issuers
    assert (issuer.jwks_url, issuer.issuer, issuer.audience, issuer.secrets) == ("http://k/jwks", "i", ("a", "b"), ())


def test_the_example_file_is_the_default_policy() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "policy.example.yaml"
    loaded = parse_policy(
        example.read_text(),
        source=str(example),
        environ={},
        fallback_issuer=DEFAULT.policy.issuers[0],
        reserved_secrets=SETTINGS.internal_secrets,
    )
    assert loaded == DEFAULT.policy
