"""Headers and the Authorization header: the upstream gets the gateway's identity and nothing a client forged.

Checked on the wire (WireUpstream): the exact set of header names the upstream received, each exactly once.
"""

from __future__ import annotations

import json
import logging

import pytest

from tests.gateway_fixtures import make_token
from tests.security.conftest import EdgeFactory
from tests.security.wire import Seen, WireUpstream, assert_not_echoed, exchange, request

TOKEN = make_token("alice")
GATEWAY_SET = {"host", "x-user-id", "x-gateway-assertion", "x-request-id", "x-forwarded-for", "x-forwarded-proto"}


def names(seen: Seen) -> list[str]:
    return [line.split(":", 1)[0].lower() for line in seen.head.decode("latin-1").split("\r\n")[1:]]


SPOOFS = [
    "X-User-Id: bob",
    "x-user-id: bob",
    "X-USER-ID: bob",
    "X_User_Id: bob",
    "X-User-ID: alice, bob",
    "X-Gateway-Assertion: eyJhbGciOiJub25lIn0.eyJzdWIiOiJib2IifQ.",
    "x-gateway-assertion: forged",
    "X_Gateway_Assertion: forged",
    "X-Forwarded-For: 10.0.0.1",
    "X-Forwarded-Proto: https",
    "X-Forwarded-Host: admin.internal",
    "X-Forwarded-Prefix: /admin",
    "Forwarded: for=10.0.0.1;proto=https;host=admin.internal",
    "X-Real-IP: 10.0.0.1",
    "True-Client-IP: 10.0.0.1",
    "X-Original-URL: /api/bob/tasks",
    "X-Rewrite-URL: /api/bob/tasks",
    "X-HTTP-Method-Override: DELETE",
    "X-HTTP-Method: DELETE",
    "X-Method-Override: DELETE",
    "Cookie: better-auth.session_token=abc; token=" + make_token("bob"),
    "Proxy-Authorization: Basic Ym9iOnB3",
    "Keep-Alive: timeout=5",
    "TE: trailers",
    "Trailer: X-User-Id",
    "Via: 1.1 evil",
    "X-Debug: 1",
]


async def test_spoofed_identity_and_routing_headers_never_reach_upstream(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url)
    ex = await exchange(gw.port, request("GET", "/api/alice/tasks", *SPOOFS, "X-User-Id: carol", token=TOKEN))
    assert ex.status == 200
    [seen] = wire.seen
    assert seen.request_line == "GET /api/alice/tasks HTTP/1.1"
    got = names(seen)
    assert sorted(got) == sorted(GATEWAY_SET), got  # each exactly once, nothing else
    assert seen.header("X-User-Id") == ["alice"]
    assert seen.header("X-Forwarded-For") == ["127.0.0.1"] and seen.header("X-Forwarded-Proto") == ["http"]


@pytest.mark.parametrize(
    "connection",
    [
        "close, X-User-Id, X-Gateway-Assertion, Authorization, Host, Content-Length",
        "close, X-Forwarded-For, X-Forwarded-Proto, X-Request-Id",
        "Content-Type, Accept, close, Transfer-Encoding",
    ],
)
async def test_hop_by_hop_trick_removes_nothing_the_gateway_sets(
    edge: EdgeFactory, wire: WireUpstream, connection: str
) -> None:
    gw = await edge(upstream_url=wire.url)
    lines = ("Content-Type: application/json", "Accept: application/json", "Content-Length: 2")
    raw = request("POST", "/api/alice/tasks", *lines, f"Connection: {connection}", token=TOKEN, close=False, body=b"{}")
    ex = await exchange(gw.port, raw)
    assert [r.status for r in ex.responses] == [200]
    [seen] = wire.seen
    assert set(names(seen)) >= GATEWAY_SET and names(seen).count("x-user-id") == 1
    assert seen.header("X-User-Id") == ["alice"] and seen.header("Content-Length") == ["2"] and seen.body == b"{}"
    assert seen.header("Host") == [f"127.0.0.1:{wire.port}"]
    declared = {t.strip().lower() for t in connection.split(",")}
    for optional in ("content-type", "accept"):
        assert (optional in names(seen)) is (optional not in declared)


async def test_method_override_headers_do_not_change_the_method(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url)
    overrides = ("X-HTTP-Method-Override: DELETE", "X-HTTP-Method: DELETE", "X-Method-Override: DELETE")
    ex = await exchange(gw.port, request("GET", "/api/alice/tasks/1", *overrides, token=TOKEN))
    assert ex.status == 200
    assert [s.request_line for s in wire.seen] == ["GET /api/alice/tasks/1 HTTP/1.1"]


@pytest.mark.parametrize(
    "line",
    ["Accept: a\x00b", "Accept: a\rb", "User-Agent: x\x7fy", "Content-Type: a\x0bb", "If-Match: \x1b[31m"],
    ids=["NUL", "CR", "DEL", "VT", "ESC"],
)
async def test_control_characters_in_header_values_are_400(edge: EdgeFactory, wire: WireUpstream, line: str) -> None:
    gw = await edge(upstream_url=wire.url)
    ex = await exchange(gw.port, request("GET", "/api/alice/tasks", line, token=TOKEN))
    assert ex.status == 400
    assert wire.seen == []


async def test_non_ascii_header_values_pass_through_unchanged(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url)
    ex = await exchange(gw.port, request("GET", "/api/alice/tasks", "User-Agent: caf\xe9 \xff", token=TOKEN))
    assert ex.status == 200
    assert wire.seen[0].header("User-Agent") == ["caf\xe9 \xff"]


# --- the Authorization header -------------------------------------------------------------------------------


PLAIN = 'Bearer realm="taskgate"'
INVALID = 'Bearer realm="taskgate", error="invalid_token"'
AMBIGUOUS = 'Bearer realm="taskgate", error="invalid_request"'


@pytest.mark.parametrize(
    ("lines", "status", "challenge"),
    [
        ((), 401, PLAIN),
        (("Authorization: Basic YWxpY2U6cHc=",), 401, PLAIN),
        (("Authorization: Digest username=alice",), 401, PLAIN),
        (("Authorization: Bearer",), 401, PLAIN),
        (("Authorization:",), 401, PLAIN),
        ((f"Authorization: Bearer\t{TOKEN}",), 401, PLAIN),
        ((f"Authorization: Bearer {TOKEN}, Bearer {TOKEN}",), 401, INVALID),
        ((f"Authorization: Bearer {TOKEN} extra",), 401, INVALID),
        ((f"Authorization: Bearer \"{TOKEN}\"",), 401, INVALID),
        ((f"Authorization: Bearer {TOKEN}=",), 401, INVALID),
        (("Authorization: Bearer null",), 401, INVALID),
        ((f"Authorization: Bearer {TOKEN}", f"Authorization: Bearer {TOKEN}"), 400, AMBIGUOUS),
        ((f"Authorization: Bearer {TOKEN}", "authorization: Basic eA=="), 400, AMBIGUOUS),
        (("Authorization: Bearer null", "Authorization: Bearer undefined"), 400, AMBIGUOUS),
    ],
    ids=[
        "none", "basic", "digest", "scheme only", "empty", "tab separator", "two in one value", "trailing junk",
        "quoted", "padded", "null", "two headers", "bearer and basic", "two garbage headers",
    ],
)  # fmt: skip
async def test_authorization_must_be_exactly_one_bearer_token(
    edge: EdgeFactory,
    wire: WireUpstream,
    caplog: pytest.LogCaptureFixture,
    lines: tuple[str, ...],
    status: int,
    challenge: str,
) -> None:
    """No credentials → the plain challenge; a value that is no usable token → invalid_token; only two headers
    (ambiguous as HTTP: which one is the credential?) → 400. A valid token in a bad value is never used."""
    gw = await edge(upstream_url=wire.url)
    with caplog.at_level(logging.DEBUG):
        ex = await exchange(gw.port, request("GET", "/api/alice/tasks", *lines))
    [answer] = ex.responses
    assert answer.status == status
    assert answer.header("WWW-Authenticate") == [challenge]
    assert set(json.loads(answer.body)) == {"detail"}
    assert_not_echoed(ex.data + caplog.text.encode(), TOKEN)
    assert wire.seen == []


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_bearer_scheme_is_case_insensitive(edge: EdgeFactory, wire: WireUpstream, scheme: str) -> None:
    gw = await edge(upstream_url=wire.url)
    ex = await exchange(gw.port, request("GET", "/api/alice/tasks", f"Authorization: {scheme} {TOKEN}"))
    assert ex.status == 200 and len(wire.seen) == 1


@pytest.mark.parametrize(
    ("target", "lines", "body", "status"),
    [
        (f"/api/alice/tasks?access_token={TOKEN}", (), b"", 400),
        (f"/api/alice/tasks?token={TOKEN}&jwt={TOKEN}", (), b"", 400),
        ("/api/alice/tasks", (f"Cookie: token={TOKEN}; better-auth.session_token={TOKEN}",), b"", 401),
        (
            "/api/alice/tasks",
            ("Content-Type: application/x-www-form-urlencoded",),
            f"access_token={TOKEN}".encode(),
            401,
        ),
        ("/api/alice/tasks", (f"X-Access-Token: {TOKEN}", f"X-Auth-Token: {TOKEN}", f"Token: {TOKEN}"), b"", 401),
    ],
    ids=["query access_token", "query token/jwt", "cookie", "form body", "other headers"],
)
async def test_tokens_outside_authorization_are_not_credentials(
    edge: EdgeFactory,
    wire: WireUpstream,
    caplog: pytest.LogCaptureFixture,
    target: str,
    lines: tuple[str, ...],
    body: bytes,
    status: int,
) -> None:
    gw = await edge(upstream_url=wire.url)
    method = "POST" if body else "GET"
    framing = (f"Content-Length: {len(body)}",) if body else ()
    with caplog.at_level(logging.DEBUG):
        ex = await exchange(gw.port, request(method, target, *lines, *framing, body=body))
    assert ex.status == status
    if status == 401:
        assert ex.responses[0].header("WWW-Authenticate") == ['Bearer realm="taskgate"']
    assert_not_echoed(ex.data + caplog.text.encode(), TOKEN)
    assert wire.seen == []


@pytest.mark.parametrize(
    "query",
    [f"access_token={TOKEN}", f"q={TOKEN}", "token=x", "ID_TOKEN=x", f"q={TOKEN.replace('.', '%2E')}", "jwt"],
)
async def test_credentials_in_the_query_are_refused_even_with_a_valid_bearer(
    edge: EdgeFactory, wire: WireUpstream, caplog: pytest.LogCaptureFixture, query: str
) -> None:
    """A query-string token would be forwarded byte for byte and land in access logs: refused instead."""
    gw = await edge(upstream_url=wire.url)
    with caplog.at_level(logging.DEBUG):
        ex = await exchange(gw.port, request("GET", f"/api/alice/tasks?{query}", token=make_token("alice", jti="q")))
    assert ex.status == 400
    assert json.loads(ex.responses[0].body) == {"detail": "credentials are not accepted in the query string"}
    assert_not_echoed(ex.data + caplog.text.encode(), TOKEN)
    assert wire.seen == []
