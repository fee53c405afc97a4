"""Gateway-only contract: CORS preflights are answered at the gateway and never forwarded."""

from __future__ import annotations

from aiohttp import ClientSession

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
