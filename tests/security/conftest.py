"""Fixtures for the adversarial suite: the gateway started exactly as production starts it, on a real port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.server import RunningGateway, open_gateway
from tests.gateway_fixtures import Recorder, gateway_settings
from tests.security.wire import WireUpstream, wire_upstream


@dataclass
class Edge:
    """A running gateway: its port and its Gateway object (for counters such as JWKS fetches)."""

    port: int
    gateway: Gateway

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


EdgeFactory = Callable[..., Awaitable[Edge]]


@pytest.fixture
async def edge(recorder: Recorder) -> AsyncIterator[EdgeFactory]:
    """Start gateways through gateway.server.open_gateway (production limits, deadlines, error pages)."""
    started: list[RunningGateway] = []

    async def start(**overrides: Any) -> Edge:
        upstream = overrides.pop("upstream_url", recorder.url)
        running = await open_gateway(gateway_settings(upstream, **overrides), host="127.0.0.1", port=0)
        started.append(running)
        return Edge(running.port, running.gateway)

    yield start
    for running in started:
        await running.stop()


@pytest.fixture
async def wire() -> AsyncIterator[WireUpstream]:
    async with wire_upstream() as upstream:
        yield upstream


# The JWKS issuer of the gateway's own JWKS tests (keys the test controls, fetch counter, failure switch).
from tests.gateway.test_jwks import issuer as issuer  # noqa: E402
