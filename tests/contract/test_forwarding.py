"""Gateway-only contract: what the upstream receives for an accepted request, byte for byte.

Teams running their own upstream can run this module against the gateway alone; it needs no task service.
"""

from __future__ import annotations

import io
import json
import time

import jwt
import pytest
from aiohttp import ClientSession, web

from tests.gateway_fixtures import (
    INTERNAL_SECRET,
    GatewayFactory,
    Recorder,
    bearer,
    make_token,
    raw_request,
    status_of,
)


def verify_assertion(value: str) -> dict[str, object]:
    """Verify an assertion the way docs/contract.md tells a service to."""
    header = jwt.get_unverified_header(value)
    assert header == {"alg": "HS256", "typ": "tg-assertion+jwt"}
    claims: dict[str, object] = jwt.decode(
        value, INTERNAL_SECRET, algorithms=["HS256"], audience="task-service", issuer="taskgate-gateway"
    )
    assert isinstance(claims["iat"], int) and isinstance(claims["exp"], int)
    assert 0 < claims["exp"] - claims["iat"] <= 60
    assert abs(claims["iat"] - time.time()) < 5
    return claims


async def test_get_is_forwarded_with_identity_and_assertion(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        resp = await client.get(
            gw.make_url("/api/alice/tasks?status=pending&q=a%20b&sort=-title"),
            headers={**bearer(make_token("alice")), "Accept": "application/json", "If-None-Match": '"3"'},
        )
        assert resp.status == 200
        assert await resp.json() == [{"ok": True}]
        assert resp.headers["X-Total-Count"] == "1"
        assert resp.headers["X-Request-Id"]
    [got] = recorder.received
    assert got.method == "GET"
    assert got.raw_path == "/api/alice/tasks?status=pending&q=a%20b&sort=-title"
    assert got.header("X-User-Id") == ["alice"]
    assert got.header("Accept") == ["application/json"]
    assert got.header("If-None-Match") == ['"3"']
    assert got.header("X-Forwarded-For") == ["127.0.0.1"]
    assert got.header("X-Forwarded-Proto") == ["http"]
    [rid] = got.header("X-Request-Id")
    assert rid == resp.headers["X-Request-Id"]
    [assertion] = got.header("X-Gateway-Assertion")
    claims = verify_assertion(assertion)
    assert claims["sub"] == "alice"
    assert claims["mth"] == "GET"
    assert claims["tgt"] == "/api/alice/tasks?status=pending&q=a%20b&sort=-title"
    assert claims["rid"] == rid
    assert "authorization" not in got.names()
    assert got.header("Host") == [f"127.0.0.1:{recorder.server.port}"]  # type: ignore[union-attr]


async def test_body_is_forwarded_with_gateway_framing(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    payload = json.dumps({"title": "Buy milk", "description": "2 litres"}).encode()
    async with ClientSession() as client:
        resp = await client.post(
            gw.make_url("/api/alice/tasks"),
            data=payload,
            headers={**bearer(make_token("alice")), "Content-Type": "application/json", "Idempotency-Key": "k-1"},
            chunked=True,
        )
        assert resp.status == 200
    [got] = recorder.received
    assert got.method == "POST"
    assert got.body == payload
    assert got.header("Content-Length") == [str(len(payload))]
    assert got.header("Transfer-Encoding") == []
    assert got.header("Content-Type") == ["application/json"]
    assert got.header("Idempotency-Key") == ["k-1"]
    assert verify_assertion(got.header("X-Gateway-Assertion")[0])["mth"] == "POST"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/alice/tasks/7"),
        ("PUT", "/api/alice/tasks/7"),
        ("PATCH", "/api/alice/tasks/7"),
        ("DELETE", "/api/alice/tasks/7"),
        ("PATCH", "/api/alice/tasks/7/complete"),
        ("POST", "/api/alice/tasks"),
    ],
)
async def test_every_route_is_forwarded(
    recorder: Recorder, start_gateway: GatewayFactory, method: str, path: str
) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        resp = await client.request(method, gw.make_url(path), headers=bearer(make_token("alice")))
        assert resp.status == 200
    [got] = recorder.received
    assert (got.method, got.raw_path) == (method, path)
    claims = verify_assertion(got.header("X-Gateway-Assertion")[0])
    assert (claims["mth"], claims["tgt"]) == (method, path)


SPOOFED = [
    ("X-User-Id", "bob"),
    ("x-user-id", "bob"),
    ("X-USER-ID", "bob"),
    ("X_User_Id", "bob"),
    ("X-Gateway-Assertion", "forged"),
    ("x-gateway-assertion", "forged"),
    ("X_Gateway_Assertion", "forged"),
    ("Cookie", "session=abc"),
    ("Forwarded", "for=1.2.3.4;proto=https"),
    ("X-Forwarded-For", "1.2.3.4"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Proto", "https"),
    ("X-Real-IP", "1.2.3.4"),
    ("X-Original-URL", "/api/bob/tasks"),
    ("X-Rewrite-URL", "/api/bob/tasks"),
    ("X-HTTP-Method-Override", "DELETE"),
    ("Proxy-Authorization", "Basic eDp5"),
    ("Keep-Alive", "timeout=5"),
    ("Upgrade", "websocket"),
    ("TE", "trailers"),
    ("X-Custom-Thing", "1"),
]


async def test_spoofed_and_unknown_headers_never_reach_upstream(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway()
    lines = "".join(f"{name}: {value}\r\n" for name, value in SPOOFED)
    token = make_token("alice")
    request = (
        f"GET /api/alice/tasks HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer {token}\r\n"
        f"X-User-Id: bob\r\n{lines}Connection: close\r\n\r\n"
    ).encode()
    response = await raw_request(gw.port, request)
    assert status_of(response) == 200
    [got] = recorder.received
    assert got.header("X-User-Id") == ["alice"]
    assert len(got.header("X-Gateway-Assertion")) == 1
    assert verify_assertion(got.header("X-Gateway-Assertion")[0])["sub"] == "alice"
    assert got.header("X-Forwarded-For") == ["127.0.0.1"]
    assert got.header("X-Forwarded-Proto") == ["http"]
    assert got.header("Host") != ["evil.example"]
    allowed = {
        "host", "x-user-id", "x-gateway-assertion", "x-request-id", "x-forwarded-for", "x-forwarded-proto",
        "content-length",
    }  # fmt: skip
    assert got.names() <= allowed, got.names() - allowed


async def test_connection_header_cannot_remove_gateway_headers(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway()
    token = make_token("alice")
    request = (
        f"POST /api/alice/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        'Content-Type: application/json\r\nIf-Match: "1"\r\nContent-Length: 2\r\n'
        "Connection: keep-alive, X-User-Id, X-Gateway-Assertion, Authorization, Host, Content-Length, If-Match\r\n"
        "\r\n{}"
    ).encode()
    response = await raw_request(gw.port, request, timeout=2)
    assert status_of(response) == 200
    [got] = recorder.received
    assert got.header("X-User-Id") == ["alice"]
    assert len(got.header("X-Gateway-Assertion")) == 1
    assert got.header("Content-Length") == ["2"] and got.body == b"{}"
    assert got.header("If-Match") == []  # the client declared it hop-by-hop


async def test_request_id_from_client_is_kept_only_when_well_formed(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        for given, kept in (("req-123.abc", True), ("bad id with spaces", False), ("x" * 200, False)):
            resp = await client.get(
                gw.make_url("/api/alice/tasks"), headers={**bearer(make_token("alice")), "X-Request-Id": given}
            )
            assert resp.status == 200
            assert (recorder.received[-1].header("X-Request-Id") == [given]) is kept
            assert resp.headers["X-Request-Id"] == recorder.received[-1].header("X-Request-Id")[0]


async def test_response_headers_are_filtered(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    async def reply(_request: web.Request) -> web.Response:
        return web.Response(
            status=201,
            body=b'{"id": 1}',
            content_type="application/json",
            headers={
                "Location": "/api/alice/tasks/1",
                "ETag": '"1"',
                "X-User-Id": "alice",
                "X-Gateway-Assertion": "internal",
                "Connection": "X-Secret-Hop",
                "X-Secret-Hop": "1",
            },
        )

    recorder.reply = reply
    gw = await start_gateway()
    async with ClientSession() as client:
        resp = await client.post(gw.make_url("/api/alice/tasks"), headers=bearer(make_token("alice")), json={})
        assert resp.status == 201
        assert await resp.read() == b'{"id": 1}'
        assert resp.headers["Location"] == "/api/alice/tasks/1"
        assert resp.headers["ETag"] == '"1"'
        for dropped in ("X-User-Id", "X-Gateway-Assertion", "X-Secret-Hop"):
            assert dropped not in resp.headers
        assert resp.headers["Server"] == "taskgate"


async def test_redirects_are_passed_through_not_followed(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    async def reply(_request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/api/bob/tasks"})

    recorder.reply = reply
    gw = await start_gateway()
    async with ClientSession() as client:
        resp = await client.get(
            gw.make_url("/api/alice/tasks"), headers=bearer(make_token("alice")), allow_redirects=False
        )
        assert resp.status == 302
        assert resp.headers["Location"] == "/api/bob/tasks"
    assert [r.raw_path for r in recorder.received] == ["/api/alice/tasks"]


CANONICAL = [
    # (method, target as sent, target forwarded and signed)
    ("GET", "/api/alice/tasks?", "/api/alice/tasks"),
    ("GET", "/api/alice/tasks/", "/api/alice/tasks"),
    ("POST", "/api/alice/tasks/", "/api/alice/tasks"),
    ("GET", "/api/alice/tasks/?", "/api/alice/tasks"),
    ("GET", "/api/alice/tasks/?status=all&sort=-title", "/api/alice/tasks?status=all&sort=-title"),
    ("GET", "/api/alice/tasks/5/", "/api/alice/tasks/5"),
    ("PUT", "/api/alice/tasks/5/?", "/api/alice/tasks/5"),
    ("DELETE", "/api/alice/tasks/5?", "/api/alice/tasks/5"),
    ("PATCH", "/api/alice/tasks/5/complete/", "/api/alice/tasks/5/complete"),
]


@pytest.mark.parametrize(("method", "sent", "forwarded"), CANONICAL)
async def test_empty_query_and_trailing_slash_are_forwarded_and_signed_canonical(
    recorder: Recorder, start_gateway: GatewayFactory, method: str, sent: str, forwarded: str
) -> None:
    """What `${url}?${new URLSearchParams({})}` and axios' baseURL joins send is the canonical route: the upstream
    receives, and the assertion names, the target without the bare `?` or the trailing slash."""
    gw = await start_gateway()
    body = b"{}" if method in ("POST", "PUT") else b""
    response = await raw_request(
        gw.port,
        f"{method} {sent} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {make_token('alice')}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body,
    )
    assert status_of(response) == 200, response[:200]
    [got] = recorder.received
    assert (got.method, got.raw_path, got.body) == (method, forwarded, body)
    claims = verify_assertion(got.header("X-Gateway-Assertion")[0])
    assert (claims["mth"], claims["tgt"], claims["sub"]) == (method, forwarded, "alice")


async def test_the_access_log_names_the_canonical_route(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    access = gw.pipeline.access_log
    assert access is not None
    stream = access.stream = io.StringIO()
    token = make_token("alice")
    for sent in ("/api/alice/tasks?", "/api/alice/tasks/5/"):
        request = f"GET {sent} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        assert status_of(await raw_request(gw.port, request.encode())) == 200
    access.flush()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["route"], e["status"], e["user"]) for e in lines] == [
        ("/api/{user_id}/tasks", 200, "alice"),
        ("/api/{user_id}/tasks/{id}", 200, "alice"),
    ]
    assert [r.raw_path for r in recorder.received] == ["/api/alice/tasks", "/api/alice/tasks/5"]


@pytest.mark.parametrize(
    ("method", "sent"),
    [
        ("GET", "/api/bob/tasks?"),
        ("POST", "/api/bob/tasks/"),
        ("DELETE", "/api/bob/tasks/5/"),
        ("PATCH", "/api/bob/tasks/5/complete/?"),
        ("GET", "/api/Alice/tasks/"),
    ],
)
async def test_canonical_spellings_of_another_users_path_are_403(
    recorder: Recorder, start_gateway: GatewayFactory, method: str, sent: str
) -> None:
    gw = await start_gateway()
    token = make_token("alice")
    request = f"{method} {sent} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    response = await raw_request(gw.port, request.encode())
    assert status_of(response) == 403, response[:200]
    assert recorder.received == []
