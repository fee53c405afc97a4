"""Fixtures for the adversarial suite: the gateway started exactly as production starts it, on a real port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from gateway.app import GATEWAY_KEY, Gateway, create_app
from gateway.connection import gateway_runner
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
    """Start gateways through gateway.connection.gateway_runner (production limits, deadlines, error pages)."""
    runners: list[web.AppRunner] = []

    async def start(**overrides: Any) -> Edge:
        upstream = overrides.pop("upstream_url", recorder.url)
        settings = gateway_settings(upstream, **overrides)
        app = create_app(settings)
        runner = gateway_runner(app, settings)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return Edge(runner.addresses[0][1], app[GATEWAY_KEY])

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def wire() -> AsyncIterator[WireUpstream]:
    async with wire_upstream() as upstream:
        yield upstream


# The JWKS issuer of the gateway's own JWKS tests (keys the test controls, fetch counter, failure switch).
from tests.gateway.test_jwks import issuer as issuer  # noqa: E402
