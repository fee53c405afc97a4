"""Prometheus metrics for the gateway, served on the admin port only (GATEWAY_ADMIN_PORT).

Labels are bounded by construction: the route is a template, never the raw path, and the outcome is one of a
fixed set, so no client can blow up the series count.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .forward import Upstream
from .jwks import JwksCache
from .tokens import TokenVerifier


class Watched(Protocol):
    """What the collector reads from the gateway (kept structural to avoid an import cycle with app.py)."""

    tokens: TokenVerifier
    upstream: Upstream
    jwks: JwksCache | None


class _GatewayCollector(Collector):
    def __init__(self, gateway: Watched) -> None:
        self._gateway = gateway

    def collect(self) -> Iterator[Metric]:
        gateway = self._gateway
        cache = CounterMetricFamily(
            "taskgate_gateway_token_cache", "Verified-token cache lookups by result", labels=["result"]
        )
        cache.add_metric(["hit"], gateway.tokens.cache_hits)
        cache.add_metric(["miss"], gateway.tokens.cache_misses)
        yield cache
        fetches = CounterMetricFamily("taskgate_gateway_jwks_fetches", "JWKS fetches by result", labels=["result"])
        jwks = gateway.jwks
        fetches.add_metric(["ok"], (jwks.fetches - jwks.failures) if jwks else 0)
        fetches.add_metric(["failed"], jwks.failures if jwks else 0)
        yield fetches
        yield GaugeMetricFamily(
            "taskgate_gateway_upstream_inflight",
            "Requests currently using a pooled upstream connection",
            value=gateway.upstream.inflight,
        )
        yield GaugeMetricFamily(
            "taskgate_gateway_upstream_pool_size", "Upstream connection pool limit", value=gateway.upstream.pool_size
        )


OUTCOMES = {
    200: "ok",
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    502: "upstream_error",
    504: "upstream_timeout",
}


class GatewayMetrics:
    """One registry per process, so tests and workers never share counters by accident."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "taskgate_gateway_requests",
            "Requests answered, by route template, method, status and outcome",
            ["route", "method", "status", "outcome"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int, str], tuple[Counter, Histogram]] = {}
        self.latency = Histogram(
            "taskgate_gateway_request_duration_seconds",
            "Time from request parsed to response ready, by route template",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
            registry=self.registry,
        )

    def watch(self, gateway: Watched) -> None:
        """Expose the gateway's own counters at scrape time: nothing is added to the request path."""
        self.registry.register(_GatewayCollector(gateway))

    def observe(self, route: str, method: str, status: int, outcome: str | None, seconds: float) -> None:
        """Count one answered request. Methods and statuses are bounded by the parser and the contract."""
        if outcome is None:
            outcome = OUTCOMES.get(status, "ok" if status < 400 else "upstream_status")
        key = (route, method, status, outcome)
        children = self._children.get(key)
        if children is None:  # label lookups cost more than the increment itself; the key set is bounded
            children = self._children[key] = (
                self.requests.labels(route, method, str(status), outcome),
                self.latency.labels(route),
            )
        children[0].inc()
        children[1].observe(seconds)

    async def serve(self, _request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def admin_app(metrics: GatewayMetrics) -> web.Application:
    """The admin listener: metrics only, so it can be scraped without exposing it to the public."""
    app = web.Application()
    app.router.add_get("/metrics", metrics.serve)
    return app
