"""Gateway-only contract: `GET /openapi.json` is the configured document, answered by the gateway itself.

The API's shape is no secret, so the path needs no token; it must never reach the upstream, whatever is sent
with it, and only GET and HEAD are answered.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import ClientSession

from gateway.openapi import DEFAULT_FILE
from tests.gateway_fixtures import GatewayFactory, Recorder, bearer, make_token

ALLOWED = "http://app.example"


def committed() -> object:
    return json.loads(DEFAULT_FILE.read_text(encoding="utf-8"))


async def test_the_document_is_served_without_a_token_and_never_forwarded(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        anonymous = await client.get(gw.make_url("/openapi.json"))
        assert anonymous.status == 200
        assert anonymous.headers["Content-Type"] == "application/json"
        assert anonymous.headers["X-Request-Id"]
        assert await anonymous.json() == committed()
        # Whatever credentials come along are neither needed nor read: the answer is the same.
        for headers in (bearer("not-a-token"), bearer(make_token("alice")), {"Authorization": "Basic YTpi"}):
            resp = await client.get(gw.make_url("/openapi.json"), headers=headers)
            assert resp.status == 200
            assert await resp.read() == await anonymous.read()
    assert recorder.received == []


async def test_head_answers_the_headers_of_get_without_the_body(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        full = await client.get(gw.make_url("/openapi.json"))
        head = await client.head(gw.make_url("/openapi.json"))
        assert head.status == 200
        assert head.headers["Content-Length"] == str(len(await full.read()))
        assert await head.read() == b""
    assert recorder.received == []


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_other_methods_are_405_and_never_forwarded(
    recorder: Recorder, start_gateway: GatewayFactory, method: str
) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        resp = await client.request(
            method, gw.make_url("/openapi.json"), json={"title": "x"}, headers=bearer(make_token("alice"))
        )
        assert resp.status == 405
        assert resp.headers["Allow"] == "GET, HEAD"
        assert await resp.json() == {"detail": "method not allowed"}
    assert recorder.received == []


async def test_an_allowed_origin_may_read_it_from_a_browser(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        resp = await client.get(gw.make_url("/openapi.json"), headers={"Origin": ALLOWED})
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
        other = await client.get(gw.make_url("/openapi.json"), headers={"Origin": "http://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers
    assert recorder.received == []


async def test_another_upstream_publishes_its_own_document(
    recorder: Recorder, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    own = {"openapi": "3.1.0", "info": {"title": "another upstream", "version": "2"}, "paths": {}}
    (tmp_path / "api.json").write_text(json.dumps(own))
    gw = await start_gateway(openapi_file=tmp_path / "api.json")
    async with ClientSession() as client:
        resp = await client.get(gw.make_url("/openapi.json"))
        assert await resp.json() == own
    assert recorder.received == []


async def test_without_a_document_the_path_is_not_found(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(openapi_file=None)
    async with ClientSession() as client:
        resp = await client.get(gw.make_url("/openapi.json"), headers=bearer(make_token("alice")))
        assert resp.status == 404
    assert recorder.received == []


@pytest.mark.parametrize("target", ["/openapi.json?x=1", "/api/openapi.json", "/OPENAPI.JSON"])
async def test_only_the_exact_path_is_the_document(
    recorder: Recorder, start_gateway: GatewayFactory, target: str
) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        resp = await client.get(gw.make_url(target), headers=bearer(make_token("alice")))
        assert resp.status in (400, 404)
        assert "openapi" not in (await resp.text())
    assert recorder.received == []
