"""Metrics and request logs for the task service.

One pure-ASGI middleware times every request, counts it by route template (never the raw path, so the
series count stays bounded) and writes one JSON line carrying the gateway's `X-Request-Id` and the W3C
`traceparent`, so a request can be followed from the gateway's log into this one. `/metrics` is served on the
service's own (internal) port; the gateway never routes it.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("task_service.access")

OUTCOMES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    412: "precondition_failed",
    422: "invalid",
    503: "unavailable",
}


class ServiceMetrics:
    """A registry per application instance, so tests never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "taskgate_service_requests",
            "Requests answered, by route template, method, status and outcome",
            ["route", "method", "status", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "taskgate_service_request_duration_seconds",
            "Time to answer, by route template",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
            registry=self.registry,
        )

    async def endpoint(self, _request: Request) -> Response:
        return Response(generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    return OUTCOMES.get(status, "error")


def _trace_headers(scope: Scope) -> tuple[str | None, str | None]:
    """X-Request-Id and traceparent (the first of each), in one pass over the headers."""
    request_id = traceparent = None
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id" and request_id is None:
            request_id = value.decode("latin-1")
        elif key == b"traceparent" and traceparent is None:
            traceparent = value.decode("latin-1")
    return request_id, traceparent


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # The metrics' children by label values, looked up once: prometheus_client's labels() validates and
        # locks on every call (2.5 µs a request). Bounded like the series themselves: route templates.
        self._counts: dict[tuple[str, str, int], Any] = {}
        self._latencies: dict[str, Any] = {}

    def _record(self, route: str, method: str, status: int, elapsed: float) -> None:
        count = self._counts.get((route, method, status))
        if count is None:
            count = self.metrics.requests.labels(route, method, str(status), _outcome(status))
            self._counts[(route, method, status)] = count
        count.inc()
        latency = self._latencies.get(route)
        if latency is None:
            latency = self._latencies[route] = self.metrics.latency.labels(route)
        latency.observe(elapsed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = getattr(scope.get("route"), "path", "other")
            elapsed = time.perf_counter() - started
            self._record(route, scope["method"], status, elapsed)
            request_id, traceparent = _trace_headers(scope)
            fields: dict[str, Any] = {
                "method": scope["method"],
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "request_id": request_id,
                "traceparent": traceparent,
            }
            access_log.info("request", extra={"fields": fields})


class JsonFormatter(logging.Formatter):
    """Every log line as one JSON object; request lines carry their fields inline. Times are UTC, as the
    `Z` says, and each second is formatted once."""

    _second = -1
    _stamp = ""

    def _timestamp(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging set-up, with every logger (uvicorn's own included) writing JSON to stderr.

    Records skip looking up the thread and process (a third of a record's cost), which no line shows."""
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }
