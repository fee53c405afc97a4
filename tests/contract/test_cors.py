"""Gateway-only contract: CORS preflights are answered at the gateway and never forwarded."""

from __future__ import annotations

from aiohttp import ClientSession, web

from tests.gateway_fixtures import GatewayFactory, Recorder, bearer, make_token

ALLOWED = "http://app.example"


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
    assert "DELETE" in resp.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    assert resp.headers["Vary"] == "Origin"
    assert recorder.received == []


async def test_other_origins_get_no_cors_headers(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        for origin in ("http://evil.example", "null", "http://app.example.evil.example", "HTTP://APP.EXAMPLE"):
            resp = await client.options(
                gw.make_url("/api/alice/tasks"), headers={"Origin": origin, "Access-Control-Request-Method": "GET"}
            )
            assert "Access-Control-Allow-Origin" not in resp.headers, origin
            assert resp.status == 403
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
        exposed = {h.strip() for h in ok.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"X-Total-Count", "X-Next-Cursor", "Location", "ETag", "Idempotent-Replayed", "X-Request-Id"} <= exposed
        denied = await client.get(gw.make_url("/api/alice/tasks"), headers={"Origin": ALLOWED})
        assert denied.status == 401
        assert denied.headers["Access-Control-Allow-Origin"] == ALLOWED
        evil = await client.get(
            gw.make_url("/api/alice/tasks"), headers={**bearer(make_token("alice")), "Origin": "http://evil.example"}
        )
        assert "Access-Control-Allow-Origin" not in evil.headers
    assert len(recorder.received) == 2


async def test_cors_is_the_gateways_alone(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    """An upstream cannot widen CORS or replace the request id; its own Vary survives beside Vary: Origin."""

    async def permissive(_request: web.Request) -> web.Response:
        return web.json_response(
            [],
            headers={
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Credentials": "true",
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
    assert "Access-Control-Allow-Credentials" not in allowed.headers
    assert sorted(allowed.headers.getall("Vary")) == ["Accept", "Origin"]
    assert "Access-Control-Allow-Origin" not in foreign.headers
    for resp, sent in zip((allowed, foreign), recorder.received, strict=True):
        assert resp.headers.getall("X-Request-Id") == sent.header("X-Request-Id")
