"""Gateway-only contract: `GET /openapi.json` is the configured document, answered by the gateway itself, and
what the gateway answers on its own (400, 401, 403, 404, 413, 415, 429, 431, 502, 504) is what that document says.

The API's shape is no secret, so the path needs no token; it must never reach the upstream, whatever is sent
with it, and only GET and HEAD are answered.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from aiohttp import ClientSession, web
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.openapi import DEFAULT_FILE
from tests.gateway_fixtures import GatewayFactory, Recorder, bearer, make_token
from tests.support.processes import free_port

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


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
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


async def test_a_preflight_to_it_is_a_preflight_like_any_other(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway()
    async with ClientSession() as client:
        preflight = {"Origin": ALLOWED, "Access-Control-Request-Method": "GET"}
        allowed = await client.options(gw.make_url("/openapi.json"), headers=preflight)
        assert allowed.status == 204
        assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED
        refused = await client.options(
            gw.make_url("/openapi.json"), headers={**preflight, "Origin": "http://evil.example"}
        )
        assert refused.status == 403
        assert "Access-Control-Allow-Origin" not in refused.headers
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


DOCUMENTED = schemathesis.openapi.from_path(DEFAULT_FILE)
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance, response_headers_conformance]
ALICE = bearer(make_token("alice"))
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class GatewayAnswer:
    """A request to the list or create operation that the gateway answers itself, and with which settings."""

    status: int
    method: str = "GET"
    user: str = "alice"
    query: str = ""
    headers: dict[str, str] = field(default_factory=lambda: dict(ALICE))
    body: bytes = b""
    settings: dict[str, Any] = field(default_factory=dict)


GATEWAY_ANSWERS = [
    GatewayAnswer(401, headers={}),
    GatewayAnswer(401, headers=bearer(make_token("alice", ttl=-600))),
    GatewayAnswer(403, user="bob"),
    GatewayAnswer(404, user="a" * 129),
    GatewayAnswer(400, query="?q=%zz"),
    GatewayAnswer(400, query="?q=" + "%C3%A9" * 400),  # a valid q, but a target over 2048 bytes
    GatewayAnswer(431, query="?q=" + "%F0%9F%98%80" * 700),  # a request line over 8190 bytes
    GatewayAnswer(
        413, "POST", headers={**ALICE, **JSON}, body=b'{"title": "%s"}' % (b"x" * 64), settings={"max_body_bytes": 16}
    ),
    GatewayAnswer(
        415, "POST", headers={**ALICE, **JSON, "Content-Encoding": "gzip"}, body=gzip.compress(b'{"title": "x"}')
    ),
    GatewayAnswer(429, settings={"rate_limit_per_s": 0.001, "rate_limit_burst": 1}),
    GatewayAnswer(502, settings={"upstream_url": "a port nothing listens on"}),
    GatewayAnswer(504, settings={"upstream_timeout_s": 0.2}),
]


@pytest.mark.parametrize("answer", GATEWAY_ANSWERS, ids=lambda answer: f"{answer.status}")
async def test_what_the_gateway_answers_itself_is_documented(
    recorder: Recorder, start_gateway: GatewayFactory, answer: GatewayAnswer
) -> None:
    settings = dict(answer.settings)
    if "upstream_url" in settings:
        settings["upstream_url"] = f"http://127.0.0.1:{free_port()}"
    stalled = asyncio.Event()

    async def never_answer(_request: web.Request) -> web.StreamResponse:
        await stalled.wait()
        return web.json_response([])

    if answer.status == 504:
        recorder.reply = never_answer
    gw = await start_gateway(**settings)
    target = f"/api/{answer.user}/tasks{answer.query}"
    try:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
            if answer.status == 429:  # the burst of one is spent first
                assert (await client.request(answer.method, target, headers=answer.headers)).status_code == 200
            response = await client.request(answer.method, target, headers=answer.headers, content=answer.body)
    finally:
        stalled.set()
    assert response.status_code == answer.status, response.text
    case = DOCUMENTED["/api/{user_id}/tasks"][answer.method].Case(path_parameters={"user_id": answer.user})
    case.validate_response(response, checks=CHECKS)
