"""Property tests (hypothesis) for the two parsers an attacker talks to directly: request targets and tokens.

Bounded: 300 examples per property, no deadline (CI machines vary), derandomised so a run is repeatable.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httptools
import jwt
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from starlette.routing import compile_path

from gateway.auth.extract import AuthorizationMalformed, bearer_token
from gateway.auth.verifier import ASSERTION_TYPE, MAX_TOKEN_LENGTH, InvalidToken, TokenVerifier, TrustedIssuer
from gateway.http.upstream_pool import Upstream
from gateway.policy.match import Router
from gateway.policy.paths import BadTarget, NotRouted
from gateway.server import open_gateway
from taskgate_assertion.verify import request_target
from tests.gateway_fixtures import INTERNAL_SECRET, JWT_SECRET, gateway_settings, task_router
from tests.security.tokens import b64url, raw_token, token
from tests.security.wire import WireUpstream, exchange, wire_upstream

BOUNDED = settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Pieces an attacker combines: separators, dot segments and their encodings, parameters, controls, look-alikes.
PATH_ATOMS = [
    "/", "api", "tasks", "alice", "bob", "1", "42", "0", "complete", "-", "_", "~", ".", "..", "%2e", "%2E", "%2f",
    "%2F", "%5c", "%5C", "%25", "%", "%zz", "%41", "%00", ";", ";x=1", "?", "??", "#", "&", "=", "+", "\\", " ", "\t",
    "\x00", "\r", "\n", "é", "\u0430", "\uff0f", "//", "http://evil", "*", ":", "@", "!", "$", "'", "(", ")", ",",
]  # fmt: skip
# Route-shaped targets whose user segment, tail and query are attacked piece by piece.
users = st.one_of(
    st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
    st.lists(st.sampled_from(PATH_ATOMS), min_size=1, max_size=4).map("".join),
)
api_targets = st.tuples(
    st.one_of(st.just("alice"), st.just("alice"), users),
    st.one_of(
        st.sampled_from(["", "/1", "/42"]),
        st.sampled_from(["/7/complete", "/0", "/1/", "/complete", "/1/complete/x", "/01", "/1;x", "/1/.."]),
    ),
    st.one_of(
        st.just(""),
        st.from_regex(r"\?[a-z]{1,6}=[A-Za-z0-9%.+-]{0,10}", fullmatch=True),
        st.lists(st.sampled_from(PATH_ATOMS), max_size=5).map(lambda q: "?" + "".join(q)),
    ),
).map(lambda parts: f"/api/{parts[0]}/tasks{parts[1]}{parts[2]}")
targets = st.one_of(
    api_targets,
    api_targets,
    st.lists(st.sampled_from(PATH_ATOMS), max_size=14).map("".join),
    st.lists(st.sampled_from(PATH_ATOMS), max_size=10).map(lambda parts: "/api/" + "".join(parts)),
    st.tuples(st.sampled_from(["/api/alice/tasks", "/api/a-_1/tasks/7", "/api/B/tasks/9/complete"]), st.text()).map(
        lambda pair: pair[0] + "?" + pair[1]
    ),
    st.text(max_size=60),
)

ALICE = token(sub="alice")
ROUTE_TEMPLATES = {route.template.label: compile_path(route.template.label)[0] for route in task_router().policy.routes}


def service_view(raw: str) -> tuple[bytes, str]:
    """What the task service sees for a forwarded target: uvicorn's httptools parse of the gateway's bytes.

    Returns the target the service checks the assertion against, and the decoded path Starlette routes on.
    """
    wire = Upstream("http://127.0.0.1:1", timeout_s=1, connect_timeout_s=1, pool_size=1).frame("GET", raw, [], b"")
    url: list[bytes] = []

    class Collect:
        def on_url(self, part: bytes) -> None:
            url.append(part)

    httptools.HttpRequestParser(Collect()).feed_data(wire.replace(b"\r\n\r\n", b"\r\nHost: x\r\n\r\n", 1))
    parsed = httptools.parse_url(b"".join(url))
    scope = {"raw_path": parsed.path, "query_string": parsed.query or b""}
    return request_target(scope), urllib.parse.unquote(parsed.path.decode("ascii"))


def canonical(raw: str) -> str:
    """The contract's canonical form: an empty query is no query, one trailing slash is the route without it."""
    path, _, query = raw.partition("?")
    if path.endswith("/") and path != "/":
        path = path[:-1]
    return f"{path}?{query}" if query else path


@BOUNDED
@given(raw=targets)
def test_path_checker_only_accepts_what_the_service_reads_the_same_way(raw: str) -> None:
    router = task_router()
    try:
        target = router.locate(raw)
    except (BadTarget, NotRouted):
        return
    event("accepted")
    if target.forwarded != raw:
        event("accepted in canonical form")
    path, user_id, label = target.path, target.params["user_id"], target.route.template.label
    assert target.forwarded == canonical(raw) and target.forwarded.partition("?")[0] == path
    assert raw.isascii() and raw.isprintable() and " " not in raw
    assert "%" not in path and ";" not in path and "\\" not in path and "#" not in raw
    assert all(segment not in ("", ".", "..") for segment in path.split("/")[1:])
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,128}", user_id)
    assert "eyJ" not in urllib.parse.unquote_plus(raw.partition("?")[2]) or "." not in raw.partition("?")[2]
    # the canonical form is checked exactly as itself: same route, same owner, nothing left to canonicalise
    again = Router(router.policy).locate(target.forwarded)  # a fresh cache: really checked again
    assert (again.forwarded, again.path, again.route, dict(again.params)) == (
        target.forwarded,
        path,
        target.route,
        dict(target.params),
    )
    # the service checks its assertion against exactly the bytes the gateway signed (tgt) ...
    service_target, service_path = service_view(target.forwarded)
    assert service_target == target.forwarded.encode()
    # ... and Starlette routes the same route, for the same user
    matches = {route: regex.match(service_path) for route, regex in ROUTE_TEMPLATES.items()}
    assert [route for route, m in matches.items() if m] == [label]
    match = matches[label]
    assert match is not None and match["user_id"] == user_id


@BOUNDED
@given(
    values=st.lists(
        st.one_of(
            st.text(max_size=40),
            st.tuples(
                st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Bearer\t", "Token", ""]),
                st.sampled_from(["", " ", "  ", "\t"]),
                st.text(alphabet="abcXYZ019-_.=+/ \t", max_size=40),
            ).map("".join),
        ),
        max_size=3,
    )
)
def test_bearer_parser_refuses_only_ambiguity_and_passes_any_presented_value_on(
    loop: asyncio.AbstractEventLoop, values: list[str]
) -> None:
    """Two headers → 400; no Bearer credentials → None (plain challenge); any other value goes to the verifier,
    which refuses everything that is not a JWS with InvalidToken (401 invalid_token) and never crashes."""
    try:
        result = bearer_token(values)
    except AuthorizationMalformed:
        assert len(values) > 1
        return
    assert len(values) <= 1
    if result is None:
        return
    scheme, _, rest = values[0].strip().partition(" ")
    assert scheme.lower() == "bearer" and result == rest.strip(" \t") and result
    assert isinstance(_verify(loop, result), InvalidToken)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    runner = asyncio.Runner()
    yield runner.get_loop()
    runner.close()


def _verifier() -> TokenVerifier:
    return TokenVerifier(
        issuers=(TrustedIssuer("default", hmac_secrets=(JWT_SECRET.encode(),)),),
        leeway_s=30,
        max_ttl_s=None,
        cache_size=0,
    )


def _verify(loop: asyncio.AbstractEventLoop, tok: str) -> Any:
    """The verdict: an Identity, or the InvalidToken the gateway turns into 401 (anything else fails the test)."""
    try:
        return loop.run_until_complete(_verifier().verify(tok))
    except InvalidToken as exc:
        return exc


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False),
    st.text(max_size=20),
)  # fmt: skip
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
)
claim_values = st.one_of(
    json_values,
    st.integers(min_value=0, max_value=2**40),
    st.sampled_from([10**400, -(10**400), 2**53 + 1, 1e308, "9999999999", "alice", "", "a/b", "..", "alice\n"]),
    st.sampled_from(["ålice", "a" * 129, "a" * 128, "None", "1", "bob"]),
)
# Mostly plausible claims, so that acceptance (where the interesting assertions are) is actually reached.
future_time = st.integers(min_value=int(time.time()) + 60, max_value=2**34)
plausible_time = st.one_of(future_time, future_time, future_time, claim_values)
valid_sub = st.sampled_from(["alice", "bob", "A-_9", "a" * 128])
plausible_sub = st.one_of(valid_sub, valid_sub, valid_sub, claim_values)
past_time = st.integers(min_value=0, max_value=int(time.time()))
plain_headers = st.fixed_dictionaries({"alg": st.just("HS256")}, optional={"typ": st.just("JWT"), "kid": claim_values})
hostile_headers = st.fixed_dictionaries(
    {"alg": st.one_of(st.sampled_from(["HS256", "none", "None", "HS384", "RS256", "EdDSA", ""]), json_values)},
    optional={
        "typ": st.sampled_from(["JWT", ASSERTION_TYPE, "at+jwt"]),
        "kid": claim_values,
        "crit": st.just(["exp"]),
        "jku": st.just("http://127.0.0.1:9/"),
    },
)
plain_payloads = st.fixed_dictionaries(
    {"sub": plausible_sub, "exp": plausible_time},
    optional={"nbf": st.one_of(past_time, claim_values), "iat": st.one_of(past_time, claim_values)},
)
hostile_payloads = st.fixed_dictionaries(
    {},
    optional={"sub": claim_values, "exp": claim_values, "nbf": claim_values, "iat": claim_values, "aud": claim_values},
)
headers = st.one_of(plain_headers, plain_headers, hostile_headers)
payloads = st.one_of(plain_payloads, plain_payloads, hostile_payloads)


@BOUNDED
@given(header=headers, payload=payloads)
def test_correctly_signed_tokens_pass_only_with_sound_claims(
    loop: asyncio.AbstractEventLoop, header: dict[str, Any], payload: dict[str, Any]
) -> None:
    tok = raw_token(json.dumps(header), json.dumps(payload))
    verdict = _verify(loop, tok)
    if isinstance(verdict, InvalidToken):
        return
    event("accepted")
    assert header["alg"] == "HS256" and header.get("typ") != ASSERTION_TYPE
    assert not {"crit", "jku"} & set(header)
    assert verdict.user_id == payload["sub"] and re.fullmatch(r"[A-Za-z0-9_-]{1,128}", verdict.user_id)
    for claim in ("exp", "nbf", "iat"):
        value = payload.get(claim)
        assert claim != "exp" or value is not None
        assert value is None or (type(value) in (int, float) and abs(value) <= 2**53)
    assert "aud" not in payload


@BOUNDED
@given(text=st.text(max_size=300))
def test_arbitrary_text_is_never_accepted_and_never_crashes(loop: asyncio.AbstractEventLoop, text: str) -> None:
    assert isinstance(_verify(loop, text), InvalidToken)


@BOUNDED
@given(position=st.integers(min_value=0), replacement=st.sampled_from("AQgw_-.0xyz"))
def test_an_edited_token_never_changes_who_it_names(
    loop: asyncio.AbstractEventLoop, position: int, replacement: str
) -> None:
    original = token(sub="alice")
    index = position % len(original)
    edited = original[:index] + replacement + original[index + 1 :]
    verdict = _verify(loop, edited)
    if isinstance(verdict, InvalidToken):
        return
    # only a spelling of the same signature bytes can pass; header and payload text are unchanged
    assert edited.rsplit(".", 1)[0] == original.rsplit(".", 1)[0] and verdict.user_id == "alice"


def test_an_over_long_token_is_refused_even_when_correctly_signed(loop: asyncio.AbstractEventLoop) -> None:
    padded = token(sub="alice", pad="x" * MAX_TOKEN_LENGTH)
    assert len(padded) > MAX_TOKEN_LENGTH
    assert isinstance(_verify(loop, padded), InvalidToken)
    assert _verify(loop, token(sub="alice", pad="x" * 100)).user_id == "alice"


def test_the_strategies_reach_acceptance() -> None:
    """Guard against a vacuous fuzz: accepted examples exist for both parsers."""
    assert task_router().locate("/api/a-_1/tasks/7?q=%41").params["user_id"] == "a-_1"
    runner = asyncio.Runner()
    try:
        verdict = runner.run(_verifier().verify(token()))
    finally:
        runner.close()
    assert verdict.user_id == "alice"
    assert b64url(b"x") == "eA"


@dataclass
class LiveGateway:
    port: int
    wire: WireUpstream


@pytest.fixture(scope="module")
def live(loop: asyncio.AbstractEventLoop) -> Iterator[LiveGateway]:
    """One production-runner gateway in front of a wire recorder, on the module's loop, for the end-to-end fuzz."""
    upstream_cm = wire_upstream()
    wire = loop.run_until_complete(upstream_cm.__aenter__())
    config = gateway_settings(wire.url)
    running = loop.run_until_complete(open_gateway(config, host="127.0.0.1", port=0))
    yield LiveGateway(running.port, wire)
    loop.run_until_complete(running.stop())
    loop.run_until_complete(upstream_cm.__aexit__(None, None, None))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(raw=st.one_of(api_targets, api_targets, api_targets, targets))
def test_through_the_gateway_the_upstream_sees_exactly_the_checked_target(
    loop: asyncio.AbstractEventLoop, live: LiveGateway, raw: str
) -> None:
    """aiohttp's raw_path is what the checker saw, and what the upstream gets is byte for byte its canonical form."""
    line = raw.encode("utf-8", "surrogateescape")
    if any(b in line for b in b" \r\n\x00"):
        return  # not a single request-target on the wire (covered by the parser tests)
    before = len(live.wire.seen)
    head = b"GET " + line + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ALICE.encode() + b"\r\n"
    ex = loop.run_until_complete(exchange(live.port, head + b"Connection: close\r\n\r\n"))
    forwarded = live.wire.seen[before:]
    event(f"status {ex.status}")
    assert ex.closed and ex.data, "no answer"
    if ex.status == 200:
        event("forwarded")
        assert [s.request_line for s in forwarded] == [f"GET {canonical(raw)} HTTP/1.1"]
        assert task_router().locate(raw).params["user_id"] == "alice"
    else:
        assert forwarded == []
        assert ex.status in (400, 403, 404, 405)


# Users the ownership check must tell apart from alice, and the route tails, each with or without the two
# spellings the gateway makes canonical.
look_alikes = st.one_of(
    st.sampled_from(["alice", "alice", "bob", "Alice", "ALICE", "alice_", "alice-", "alic", "alicee", "a", "_alice"]),
    st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True),
)
route_tails = st.sampled_from(["", "/1", "/42", "/7/complete"])
spellings = st.tuples(st.sampled_from(["", "/"]), st.sampled_from(["", "?", "?status=all", "?q=a/b"]))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(user=look_alikes, tail=route_tails, spelling=spellings)
def test_a_canonical_spelling_is_owned_exactly_as_the_canonical_route(
    loop: asyncio.AbstractEventLoop, live: LiveGateway, user: str, tail: str, spelling: tuple[str, str]
) -> None:
    """With alice's token, `/api/{user}/tasks{tail}` plus a trailing slash and/or an empty query reaches the
    upstream exactly when `user` is alice, as the canonical target, signed for it; for anyone else, nothing."""
    slash, query = spelling
    sent = f"/api/{user}/tasks{tail}{slash}{query}"
    expected = f"/api/{user}/tasks{tail}{query if query != '?' else ''}"
    method = "PATCH" if tail.endswith("/complete") else "GET"
    before = len(live.wire.seen)
    head = f"{method} {sent} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ALICE}\r\nConnection: close\r\n\r\n"
    ex = loop.run_until_complete(exchange(live.port, head.encode()))
    forwarded = live.wire.seen[before:]
    if user != "alice":
        event("another user")
        assert ex.status == 403 and forwarded == []
        return
    event(f"alice, spelled {'canonical' if sent == expected else 'otherwise'}")
    assert ex.status == 200
    [seen] = forwarded
    assert seen.request_line == f"{method} {expected} HTTP/1.1"
    claims = jwt.decode(
        seen.header("X-Gateway-Assertion")[0], INTERNAL_SECRET, algorithms=["HS256"], audience="task-service"
    )
    assert (claims["mth"], claims["tgt"], claims["sub"]) == (method, expected, "alice")
