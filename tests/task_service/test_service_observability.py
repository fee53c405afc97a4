"""Metrics by route template and one JSON log line per request, carrying the gateway's request id."""

from __future__ import annotations

import json
import logging

import pytest

from task_service.observability import JsonFormatter
from tests.task_service.signer import Api

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_metrics_count_by_route_template_and_outcome(api: Api) -> None:
    task = await api.create("alice")
    assert (await api.request("GET", f"/api/alice/tasks/{task['id']}")).status_code == 200
    assert (await api.request("GET", "/api/alice/tasks/999999")).status_code == 404
    assert (await api.request("GET", "/api/alice/tasks", user=None)).status_code == 401
    assert (await api.request("POST", "/api/alice/tasks", json={"title": ""})).status_code == 422
    text = (await api.request("GET", "/metrics", user=None)).text
    for line in (
        'taskgate_service_requests_total{method="POST",outcome="ok",route="/api/{user_id}/tasks",status="201"} 1.0',
        'taskgate_service_requests_total{method="GET",outcome="ok",route="/api/{user_id}/tasks/{id}",status="200"} 1.0',
        'taskgate_service_requests_total{method="GET",outcome="not_found",route="/api/{user_id}/tasks/{id}",'
        'status="404"} 1.0',
        'taskgate_service_requests_total{method="GET",outcome="unauthenticated",route="/api/{user_id}/tasks",'
        'status="401"} 1.0',
        'taskgate_service_requests_total{method="POST",outcome="invalid",route="/api/{user_id}/tasks",'
        'status="422"} 1.0',
    ):
        assert line in text, line
    assert "/api/alice" not in text  # never the raw path


async def test_one_json_line_per_request(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="task_service.access")
    response = await api.request(
        "GET", "/api/alice/tasks", headers={"X-Request-Id": "gw-rid-7", "traceparent": TRACEPARENT}
    )
    assert response.status_code == 200
    [record] = [r for r in caplog.records if r.name == "task_service.access"]
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == "request" and entry["level"] == "info"
    assert entry["request_id"] == "gw-rid-7" and entry["traceparent"] == TRACEPARENT
    assert entry["route"] == "/api/{user_id}/tasks" and entry["status"] == 200 and entry["method"] == "GET"
    assert "X-Gateway-Assertion" not in json.dumps(entry) and "eyJ" not in json.dumps(entry)
