"""Metrics on the admin app, one JSON log line per request, and per-user rate limiting."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from prometheus_client import generate_latest

from gateway.ops.admin import admin_app
from gateway.ops.logs import MAX_REMEMBERED_MIDDLES, AccessLog, JsonFormatter
from gateway.ops.metrics import GatewayMetrics
from tests.gateway_fixtures import GatewayFactory, Recorder, bearer, make_token


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("gateway")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(old_level)


async def test_metrics_count_requests_by_route_and_outcome(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    admin = TestServer(admin_app(gw.pipeline.metrics), host="127.0.0.1")
    await admin.start_server()
    token = make_token("alice")
    async with ClientSession() as client:
        assert (await client.get(gw.make_url("/api/alice/tasks"), headers=bearer(token))).status == 200
        assert (await client.get(gw.make_url("/api/alice/tasks"), headers=bearer(token))).status == 200
        assert (await client.get(gw.make_url("/api/alice/tasks/5"))).status == 401
        assert (await client.get(gw.make_url("/api/bob/tasks/5/complete"), headers=bearer(token))).status == 405
        assert (await client.get(gw.make_url("/nope"), headers=bearer(token))).status == 404
        assert (await client.get(gw.make_url("/metrics"))).status == 404  # never on the public port
        text = await (await client.get(admin.make_url("/metrics"))).text()
    await admin.close()
    expected = [
        'taskgate_gateway_requests_total{method="GET",outcome="ok",route="/api/{user_id}/tasks",status="200"} 2.0',
        'taskgate_gateway_requests_total{method="GET",outcome="unauthenticated",route="/api/{user_id}/tasks/{id}",'
        'status="401"} 1.0',
        'taskgate_gateway_requests_total{method="GET",outcome="method_not_allowed",'
        'route="/api/{user_id}/tasks/{id}/complete",status="405"} 1.0',
        'taskgate_gateway_requests_total{method="GET",outcome="not_found",route="other",status="404"} 2.0',
        'taskgate_gateway_token_cache_total{result="hit"} 1.0',
        'taskgate_gateway_token_cache_total{result="miss"} 1.0',
        'taskgate_gateway_upstream_inflight{upstream="task-service"} 0.0',
    ]
    for line in expected:
        assert line in text, line
    assert 'taskgate_gateway_request_duration_seconds_count{route="/api/{user_id}/tasks"} 2.0' in text


async def test_one_json_line_per_request_without_secrets(
    recorder: Recorder, start_gateway: GatewayFactory, json_log: io.StringIO
) -> None:
    gw = await start_gateway()
    access = gw.pipeline.access_log
    assert access is not None
    access.stream = json_log
    token = make_token("alice")
    async with ClientSession() as client:
        await client.get(gw.make_url("/api/alice/tasks"), headers={**bearer(token), "X-Request-Id": "rid-1"})
        await client.get(gw.make_url("/api/alice/tasks"), headers=bearer(token + "x"))
    access.flush()
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    access = [entry for entry in lines if entry["logger"] == "gateway.access"]
    assert len(access) == 2
    assert access[0]["request_id"] == "rid-1" and access[0]["status"] == 200 and access[0]["user"] == "alice"
    assert access[0]["route"] == "/api/{user_id}/tasks" and access[0]["method"] == "GET"
    assert access[1]["status"] == 401 and access[1]["user"] is None
    assert recorder.received[0].header("X-Request-Id") == ["rid-1"]
    text = json_log.getvalue()
    assert token not in text and token[-16:] not in text


async def test_rate_limit_is_per_user_and_answers_429(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(rate_limit_per_s=0.5, rate_limit_burst=2)
    alice, bob = bearer(make_token("alice")), bearer(make_token("bob"))
    async with ClientSession() as client:
        statuses = [(await client.get(gw.make_url("/api/alice/tasks"), headers=alice)).status for _ in range(3)]
        assert statuses == [200, 200, 429]
        limited = await client.get(gw.make_url("/api/alice/tasks"), headers=alice)
        assert limited.status == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert await limited.json() == {"detail": "rate limit exceeded"}
        assert (await client.get(gw.make_url("/api/bob/tasks"), headers=bob)).status == 200
    assert len(recorder.received) == 3


def test_access_lines_are_json_whatever_the_values() -> None:
    """The line is laid out by hand for speed; every value must still come back exactly from a JSON parser."""
    out = io.StringIO()
    log = AccessLog(out)
    odd = 'q"uo\\te\n\u2028é'
    log.record(method="GET", route=odd, status=503, seconds=0.0012345, request_id=odd, user=None, peer=odd)
    log.record(method="POST", route="r", status=201, seconds=2.5, request_id="x", user=odd, peer="::1")
    log.flush()
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["route"] == first["request_id"] == first["peer"] == odd and first["user"] is None
    assert first["status"] == 503 and first["duration_ms"] == 1.234 and first["logger"] == "gateway.access"
    assert second["user"] == odd and second["duration_ms"] == 2500.0 and second["ts"].endswith("Z")


def test_access_lines_stay_right_when_their_repeating_part_is_remembered() -> None:
    """The method, route and status part of a line is escaped once and reused: lines that share it keep their
    own values, and more distinct combinations than the table holds still give exact lines."""
    out = io.StringIO()
    log = AccessLog(out)
    routes = [f"/r{n}/{{id}}" for n in range(MAX_REMEMBERED_MIDDLES + 5)]
    for n, route in enumerate(routes):
        log.record(method="GET", route=route, status=200, seconds=n / 1000, request_id=f"id-{n}", user=None, peer="p")
    log.record(method="GET", route=routes[0], status=404, seconds=0.5, request_id="again", user="bob", peer="q")
    log.flush()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["route"], x["status"], x["request_id"]) for x in lines[:-1]] == [
        (route, 200, f"id-{n}") for n, route in enumerate(routes)
    ]
    assert [line["duration_ms"] for line in lines[:3]] == [0.0, 1.0, 2.0]
    assert lines[-1] | {"ts": ""} == {
        "ts": "", "level": "info", "logger": "gateway.access", "msg": "request", "method": "GET",
        "route": routes[0], "status": 404, "duration_ms": 500.0, "request_id": "again", "user": "bob", "peer": "q",
    }  # fmt: skip


def test_a_cut_off_stream_is_named_in_its_access_line() -> None:
    """A streamed answer cut off after its status: the line says how, so its `200` is not read as a success."""
    out = io.StringIO()
    log = AccessLog(out)
    common = {"method": "GET", "route": "r", "status": 200, "seconds": 1.0, "request_id": "x", "user": "alice"}
    log.record(**common, peer="::1", outcome="upstream_aborted")
    log.record(**common, peer="::1")
    log.flush()
    cut, whole = (json.loads(line) for line in out.getvalue().splitlines())
    assert cut["outcome"] == "upstream_aborted" and cut["status"] == 200
    assert "outcome" not in whole


def test_latency_histogram_buckets_are_cumulative_with_prometheus_bounds() -> None:
    metrics = GatewayMetrics()
    for seconds in (0.0001, 0.0005, 0.003, 0.003, 20.0):
        metrics.observe("/api/{user_id}/tasks", "GET", 200, None, seconds)
    text = generate_latest(metrics.registry).decode()
    prefix = 'taskgate_gateway_request_duration_seconds_bucket{le="%s",route="/api/{user_id}/tasks"} %s'
    for bound, count in (("0.0005", "2.0"), ("0.001", "2.0"), ("0.005", "4.0"), ("15.0", "4.0"), ("+Inf", "5.0")):
        assert prefix % (bound, count) in text
    assert 'taskgate_gateway_request_duration_seconds_sum{route="/api/{user_id}/tasks"} 20.0066' in text
