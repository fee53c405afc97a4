"""Fixtures for the adversarial suite: the gateway started exactly as production starts it, on a real port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.gateway_fixtures import GatewayFactory, GatewayUnderTest
from tests.security.wire import WireUpstream, wire_upstream

# The adversarial suite's names for the shared fixture: a gateway started through gateway.server.open_gateway
# (production limits, deadlines, error pages) in front of the recording upstream.
Edge = GatewayUnderTest
EdgeFactory = GatewayFactory


@pytest.fixture
def edge(start_gateway: GatewayFactory) -> GatewayFactory:
    return start_gateway


@pytest.fixture
async def wire() -> AsyncIterator[WireUpstream]:
    async with wire_upstream() as upstream:
        yield upstream


# The JWKS issuer of the gateway's own JWKS tests (keys the test controls, fetch counter, failure switch).
from tests.gateway.test_jwks import issuer as issuer  # noqa: E402
