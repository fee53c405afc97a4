"""Gateway-only contract: CORS as browsers need it, answered at the gateway and never forwarded.

For an allowed origin every answer is readable (credentials allowed), and a preflight is 204 for any target, so
the page always sees the real request's real status. Any other origin gets no CORS header at all.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import ClientSession, web

from gateway.pipeline import Pipeline
from tests.gateway_fixtures import GatewayFactory, Recorder, bearer, make_token, raw_request
from tests.security.wire import Response, parse_responses

ALLOWED = "http://app.example"
FORWARDED_NAMES = {
    "host", "content-length", "x-user-id", "x-gateway-assertion", "x-request-id", "x-forwarded-for",
    "x-forwarded-proto", "accept", "content-type", "if-match", "user-agent",
}  # fmt: skip


def assert_readable_by_the_page(answer: Response) -> None:
    """What a browser needs to hand an answer to a `credentials: "include"` fetch from the allowed origin."""
    assert answer.header("Access-Control-Allow-Origin") == [ALLOWED]
    assert answer.header("Access-Control-Allow-Credentials") == ["true"]
    exposed = {h.strip() for h in answer.header("Access-Control-Expose-Headers")[0].split(",")}
    assert {"X-Total-Count", "X-Next-Cursor", "Location", "ETag", "Idempotent-Replayed", "X-Request-Id"} <= exposed
    assert {"Retry-After", "WWW-Authenticate", "Allow"} <= exposed
    assert "Origin" in answer.header("Vary")


async def send(port: int, method: str, target: str, *lines: str, body: bytes = b"") -> Response:
    head = "".join(f"{line}\r\n" for line in (f"Origin: {ALLOWED}", *lines))
    data = f"{method} {target} HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    [answer] = parse_responses(await raw_request(port, data.encode() + body))
    return answer


async def test_preflight_from_allowed_origin_needs_no_token(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        resp = await client.options(
            gw.make_url("/api/alice/tasks/3"),
            headers={
                "Origin": ALLOWED,
                "Access-Control-Request-Method": "DELETE",
                "Access-Control-Request-Headers": "authorization, if-match",
            },
        )
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    assert "DELETE" in resp.headers["Access-Control-Allow-Methods"]
    assert resp.headers["Access-Control-Allow-Headers"] == "authorization, if-match"
    assert "Origin" in resp.headers.getall("Vary")
    assert recorder.received == []


async def test_a_preflight_allows_every_header_name_asked_but_only_the_allow_list_is_forwarded(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway()
    asked = "authorization, content-type, if-match, x-requested-with, x-csrf-token, x-user-id"
    async with ClientSession() as client:
        preflight = await client.options(
            gw.make_url("/api/alice/tasks/3"),
            headers={
                "Origin": ALLOWED,
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": asked,
            },
        )
        assert preflight.status == 204
        allowed = {h.strip() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
        assert allowed == {h.strip() for h in asked.split(",")}
        actual = await client.put(
            gw.make_url("/api/alice/tasks/3"),
            json={"title": "t"},
            headers={
                **bearer(make_token("alice")),
                "Origin": ALLOWED,
                "If-Match": '"1"',
                "X-Requested-With": "XMLHttpRequest",
                "X-CSRF-Token": "abc",
                "X-User-Id": "bob",
            },
        )
        assert actual.status == 200
    [got] = recorder.received
    assert got.names() <= FORWARDED_NAMES, got.names() - FORWARDED_NAMES
    assert got.header("X-User-Id") == ["alice"] and got.header("If-Match") == ['"1"']


async def test_a_preflight_without_requested_headers_allows_the_forwarded_ones(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway()
    answer = await send(gw.port, "OPTIONS", "/api/alice/tasks", "Access-Control-Request-Method: POST")
    assert answer.status == 204
    allowed = {h.strip().lower() for h in answer.header("Access-Control-Allow-Headers")[0].split(",")}
    assert {"authorization", "content-type", "if-match", "idempotency-key", "x-request-id"} <= allowed
    assert recorder.received == []


@pytest.mark.parametrize(
    ("method", "target", "status", "detail"),
    [
        ("GET", "/api/alice/tasks?", 200, None),
        ("GET", "/api/alice/tasks/?status=all", 200, None),
        ("GET", "/api/alice/tasks/..", 400, "request path contains an empty or dot segment"),
        ("GET", "/api/alice/tasks?q=%zz", 400, "query string is malformed"),
        ("GET", "/admin", 404, "not found"),
        ("GET", "/readyz", 200, None),
        ("GET", "/api/bob/tasks", 403, "token does not grant access to this resource"),
        ("DELETE", "/api/alice/tasks", 405, "method not allowed"),
        ("PROPFIND", "/api/alice/tasks/1", 405, "method not allowed"),
    ],
)
async def test_a_preflight_lets_the_page_see_the_real_answer(
    recorder: Recorder, start_gateway: GatewayFactory, method: str, target: str, status: int, detail: str | None
) -> None:
    """A preflight is not an authorisation decision: 204 for any target and method, then the real request is
    checked in full and its status and `detail` reach the page."""
    gw = await start_gateway()
    preflight = await send(
        gw.port,
        "OPTIONS",
        target,
        f"Access-Control-Request-Method: {method}",
        "Access-Control-Request-Headers: authorization",
    )
    assert preflight.status == 204
    assert preflight.header("Access-Control-Allow-Origin") == [ALLOWED]
    assert method in {m.strip() for m in preflight.header("Access-Control-Allow-Methods")[0].split(",")}
    assert recorder.received == []
    actual = await send(gw.port, method, target, f"Authorization: Bearer {make_token('alice')}")
    assert actual.status == status
    assert_readable_by_the_page(actual)
    if detail is not None:
        assert json.loads(actual.body) == {"detail": detail}
    assert len(recorder.received) == (1 if status == 200 and target.startswith("/api/") else 0)


async def test_a_private_network_preflight_is_allowed_for_an_allowed_origin(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    asked = ("Access-Control-Request-Method: GET", "Access-Control-Request-Private-Network: true")
    answer = await send(gw.port, "OPTIONS", "/api/alice/tasks", *asked)
    assert answer.status == 204 and answer.header("Access-Control-Allow-Private-Network") == ["true"]
    plain = await send(gw.port, "OPTIONS", "/api/alice/tasks", asked[0])
    assert plain.status == 204 and plain.header("Access-Control-Allow-Private-Network") == []


async def test_other_origins_get_no_cors_headers(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        for origin in ("http://evil.example", "null", "http://app.example.evil.example", "HTTP://APP.EXAMPLE"):
            resp = await client.options(
                gw.make_url("/api/alice/tasks"),
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Private-Network": "true",
                },
            )
            assert resp.status == 403
            assert not [name for name in resp.headers if name.lower().startswith("access-control-")], origin
    assert recorder.received == []


async def test_options_without_request_method_is_no_bypass(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        resp = await client.options(gw.make_url("/api/alice/tasks"), headers={"Origin": ALLOWED})
        assert resp.status == 403
    assert recorder.received == []


async def test_actual_responses_carry_cors_for_allowed_origin(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        ok = await client.get(
            gw.make_url("/api/alice/tasks"), headers={**bearer(make_token("alice")), "Origin": ALLOWED}
        )
        assert ok.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert ok.headers["Access-Control-Allow-Credentials"] == "true"
        exposed = {h.strip() for h in ok.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"X-Total-Count", "X-Next-Cursor", "Location", "ETag", "Idempotent-Replayed", "X-Request-Id"} <= exposed
        for authorization in ({}, {"Authorization": "Bearer null"}):
            denied = await client.get(gw.make_url("/api/alice/tasks"), headers={**authorization, "Origin": ALLOWED})
            assert denied.status == 401
            assert denied.headers["Access-Control-Allow-Origin"] == ALLOWED
            assert denied.headers["Access-Control-Allow-Credentials"] == "true"
        evil = await client.get(
            gw.make_url("/api/alice/tasks"), headers={**bearer(make_token("alice")), "Origin": "http://evil.example"}
        )
        assert not [name for name in evil.headers if name.lower().startswith("access-control-")]
    assert len(recorder.received) == 2


@pytest.mark.parametrize("status", [200, 201, 204, 304, 308, 404, 409, 412, 422, 500, 503])
async def test_every_upstream_status_is_readable_by_the_page(
    recorder: Recorder, start_gateway: GatewayFactory, status: int
) -> None:
    async def reply(_request: web.Request) -> web.Response:
        if status in (204, 304):
            return web.Response(status=status)
        return web.json_response({"detail": "from the service"}, status=status, headers={"Location": "/x"})

    recorder.reply = reply
    gw = await start_gateway()
    answer = await send(gw.port, "GET", "/api/alice/tasks/1", f"Authorization: Bearer {make_token('alice')}")
    assert answer.status == status
    assert_readable_by_the_page(answer)
    assert len(recorder.received) == 1


async def test_every_gateway_refusal_is_readable_by_the_page(
    recorder: Recorder, start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """400, 401, 403, 404, 405, 408, 413, 415, 417, 429, 500, 502, 504 and the probes, each with the CORS headers."""
    never = asyncio.Event()

    async def stall(_request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    token = f"Authorization: Bearer {make_token('alice')}"
    gw = await start_gateway(max_body_bytes=10, body_timeout_s=0.3)
    limited = await start_gateway(rate_limit_per_s=0.001, rate_limit_burst=1)
    down = await start_gateway(upstream_url="http://127.0.0.1:9")
    cases: list[tuple[int, Response]] = [
        (400, await send(gw.port, "GET", "/api/alice/tasks", token, token)),
        (400, await send(gw.port, "GET", "/api/alice//tasks", token)),
        (401, await send(gw.port, "GET", "/api/alice/tasks", "Authorization: Bearer undefined")),
        (403, await send(gw.port, "GET", "/api/bob/tasks", token)),
        (404, await send(gw.port, "GET", "/nope", token)),
        (405, await send(gw.port, "DELETE", "/api/alice/tasks", token)),
        (413, await send(gw.port, "POST", "/api/alice/tasks", token, body=b"x" * 11)),
        (415, await send(gw.port, "POST", "/api/alice/tasks", token, "Content-Encoding: gzip", body=b"x")),
        (417, await send(gw.port, "POST", "/api/alice/tasks", token, "Expect: nothing", body=b"x")),
        (200, await send(limited.port, "GET", "/api/alice/tasks", token)),
        (429, await send(limited.port, "GET", "/api/alice/tasks", token)),
        (502, await send(down.port, "GET", "/api/alice/tasks", token)),
        (200, await send(gw.port, "GET", "/healthz")),
        (200, await send(gw.port, "GET", "/readyz")),
        (503, await send(down.port, "GET", "/readyz")),
        (405, await send(gw.port, "POST", "/healthz")),
    ]
    # a body that never arrives: 408 at GATEWAY_BODY_TIMEOUT_S
    head = f"POST /api/alice/tasks HTTP/1.1\r\nHost: x\r\nOrigin: {ALLOWED}\r\n{token}\r\nContent-Length: 5\r\n\r\nab"
    [timed_out] = parse_responses(await raw_request(gw.port, head.encode()))
    cases.append((408, timed_out))
    slow = await start_gateway(upstream_timeout_s=0.3)
    recorder.reply = stall
    cases.append((504, await send(slow.port, "GET", "/api/alice/tasks", token)))

    async def broken(*_args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Pipeline, "_forward", broken)
    cases.append((500, await send(gw.port, "GET", "/api/alice/tasks", token)))
    for status, answer in cases:
        assert answer.status == status, (status, answer)
        assert_readable_by_the_page(answer)
    assert len(recorder.received) == 2  # the 200, and the request that met the stalled upstream


async def test_cors_is_the_gateways_alone(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    """An upstream cannot widen CORS or replace the request id; its own Vary survives beside Vary: Origin."""

    async def permissive(_request: web.Request) -> web.Response:
        return web.json_response(
            [],
            headers={
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Credentials": "true",
                "Access-Control-Allow-Private-Network": "true",
                "Access-Control-Expose-Headers": "X-Secret",
                "Vary": "Accept",
                "X-Request-Id": "upstream-chose-this",
            },
        )

    recorder.reply = permissive
    gw = await start_gateway()
    async with ClientSession() as client:
        allowed = await client.get(
            gw.make_url("/api/alice/tasks"), headers={**bearer(make_token("alice")), "Origin": ALLOWED}
        )
        foreign = await client.get(
            gw.make_url("/api/alice/tasks"), headers={**bearer(make_token("alice")), "Origin": "http://evil.example"}
        )
    assert allowed.status == foreign.status == 200
    assert allowed.headers.getall("Access-Control-Allow-Origin") == [ALLOWED]
    assert "X-Secret" not in allowed.headers["Access-Control-Expose-Headers"]
    assert allowed.headers.getall("Access-Control-Allow-Credentials") == ["true"]
    assert "Access-Control-Allow-Private-Network" not in allowed.headers
    assert sorted(allowed.headers.getall("Vary")) == ["Accept", "Origin"]
    assert not [name for name in foreign.headers if name.lower().startswith("access-control-")]
    for resp, sent in zip((allowed, foreign), recorder.received, strict=True):
        assert resp.headers.getall("X-Request-Id") == sent.header("X-Request-Id")
