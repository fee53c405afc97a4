"""Prometheus metrics for the gateway, served on the admin port only (GATEWAY_ADMIN_PORT).

Labels are bounded by construction: the route is a template, never the raw path, and the outcome is one of a
fixed set, so no client can blow up the series count.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ..auth.revocations import RevocationFeed
from ..runtime import Runtime


class Watched(Protocol):
    """What the collector reads from the gateway (kept structural to avoid an import cycle with pipeline.py):
    the running policy's verifier, key sets and pools (None before start), and the revocation feed."""

    runtime: Runtime | None
    revocations: RevocationFeed | None


class _GatewayCollector(Collector):
    def __init__(self, gateway: Watched) -> None:
        self._gateway = gateway

    def collect(self) -> Iterator[Metric]:
        runtime = self._gateway.runtime
        cache = CounterMetricFamily(
            "taskgate_gateway_token_cache", "Verified-token cache lookups by result", labels=["result"]
        )
        cache.add_metric(["hit"], runtime.verifier.cache_hits if runtime else 0)
        cache.add_metric(["miss"], runtime.verifier.cache_misses if runtime else 0)
        yield cache
        fetches = CounterMetricFamily("taskgate_gateway_jwks_fetches", "JWKS fetches by result", labels=["result"])
        key_sets = list(runtime.key_sets.values()) if runtime else []
        failed = sum(key_set.failures for key_set in key_sets)
        fetches.add_metric(["ok"], sum(key_set.fetches for key_set in key_sets) - failed)
        fetches.add_metric(["failed"], failed)
        yield fetches
        yield from _revocation_metrics(self._gateway.revocations)
        inflight = GaugeMetricFamily(
            "taskgate_gateway_upstream_inflight",
            "Requests currently using a pooled upstream connection, by upstream",
            labels=["upstream"],
        )
        pool_size = GaugeMetricFamily(
            "taskgate_gateway_upstream_pool_size", "Upstream connection pool limit, by upstream", labels=["upstream"]
        )
        for name, pool in runtime.pools.items() if runtime else ():
            inflight.add_metric([name], pool.inflight)
            pool_size.add_metric([name], pool.pool_size)
        yield inflight
        yield pool_size


def _revocation_metrics(feed: RevocationFeed | None) -> Iterator[Metric]:
    """Entries held and how old they are: a rising age means the issuer is unreachable (the last set is kept)."""
    polls = CounterMetricFamily(
        "taskgate_gateway_revocation_polls", "Revocation feed polls by result", labels=["result"]
    )
    polls.add_metric(["ok"], (feed.polls - feed.failures) if feed else 0)
    polls.add_metric(["failed"], feed.failures if feed else 0)
    yield polls
    yield GaugeMetricFamily(
        "taskgate_gateway_revocations", "Revoked sessions and users held", value=len(feed.revoked) if feed else 0
    )
    # +Inf until the first complete load; NaN when revocation is off.
    age = feed.age_s if feed else math.nan
    yield GaugeMetricFamily(
        "taskgate_gateway_revocations_age_seconds",
        "Seconds since the revocation set was last brought up to date",
        value=math.inf if age is None else age,
    )


# The outcome a status implies; a streamed body cut off after its status was sent is counted with
# `streaming.CLIENT_GONE` or `streaming.UPSTREAM_ABORTED` instead.
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
    503: "unavailable",
    504: "upstream_timeout",
}


LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15)


class _RequestCollector(Collector):
    """Requests answered and their latency, kept as plain numbers by `GatewayMetrics.observe`.

    prometheus_client's Counter and Histogram take a lock and resolve label children on every increment: about
    1.6 µs a request, the gateway's single largest bookkeeping cost. The event loop is one thread, so the
    counts live in dicts and become metric families (same names, labels and buckets) only when scraped.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str, str], int] = {}
        # route → per-bucket counts (the last is +Inf) and the sum of observed seconds
        self.latency: dict[str, tuple[list[int], list[float]]] = {}

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "taskgate_gateway_requests",
            "Requests answered, by route template, method, status and outcome",
            labels=["route", "method", "status", "outcome"],
        )
        for labels, count in self.counts.items():
            requests.add_metric(list(labels), count)
        yield requests
        latency = HistogramMetricFamily(
            "taskgate_gateway_request_duration_seconds",
            "Time from request parsed to response ready (a streamed body: to its last byte), by route template",
            labels=["route"],
        )
        for route, (buckets, total) in self.latency.items():
            cumulative = list(itertools.accumulate(buckets))
            bounds = [repr(float(b)) for b in LATENCY_BUCKETS] + ["+Inf"]
            latency.add_metric([route], list(zip(bounds, cumulative, strict=True)), sum_value=total[0])
        yield latency


class GatewayMetrics:
    """One registry per process, so tests and workers never share counters by accident."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = _RequestCollector()
        self.registry.register(self._requests)

    def watch(self, gateway: Watched) -> None:
        """Expose the gateway's own counters at scrape time: nothing is added to the request path."""
        self.registry.register(_GatewayCollector(gateway))

    def observe(self, route: str, method: str, status: int, outcome: str | None, seconds: float) -> None:
        """Count one answered request. Methods and statuses are bounded by the parser and the contract, routes
        are templates, so the label sets stay few."""
        if outcome is None:
            outcome = OUTCOMES.get(status, "ok" if status < 400 else "upstream_status")
        counts = self._requests.counts
        key = (route, method, str(status), outcome)
        counts[key] = counts.get(key, 0) + 1
        histogram = self._requests.latency.get(route)
        if histogram is None:
            histogram = self._requests.latency[route] = ([0] * (len(LATENCY_BUCKETS) + 1), [0.0])
        histogram[0][bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        histogram[1][0] += seconds
