"""No request reaches an upstream unless a route allowed it — for random policies, targets, methods, tokens and
claims, through a live gateway in front of two recording upstreams.

The expected outcome comes from the independent model of docs/policy.md in tests/policy/test_properties.py
(it shares no code with the router); here the whole pipeline runs — parse, token verification by the
issuer's own secret, authorisation, forwarding — and what each upstream received is the verdict: exactly the
canonical target at the route's own upstream when the model allows the request, nothing anywhere otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st

from gateway.policy.model import Issuer, Policy, Upstream
from gateway.server import open_gateway
from tests.gateway_fixtures import Recorder, gateway_settings, raw_request, recording_upstream, status_of
from tests.policy.test_properties import ISSUER_NAMES, Spec, build, draw_target, given_a_policy_and_a_request, model

SECRETS = {name: f"policy-fuzz-secret-of-{name}-" + name[-1] * 32 for name in [*ISSUER_NAMES, "i3"]}


@dataclass
class Upstreams:
    one: Recorder
    two: Recorder

    def received(self) -> list[tuple[str, str, str]]:
        return [(name, got.method, got.raw_path) for name, rec in self.items() for got in rec.received]

    def items(self) -> list[tuple[str, Recorder]]:
        return [("one", self.one), ("two", self.two)]

    def clear(self) -> None:
        self.one.received.clear()
        self.two.received.clear()


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    runner = asyncio.Runner()
    yield runner.get_loop()
    runner.close()


@pytest.fixture(scope="module")
def upstreams(loop: asyncio.AbstractEventLoop) -> Iterator[Upstreams]:
    started: AsyncIterator[Upstreams]

    async def both() -> AsyncIterator[Upstreams]:
        async with recording_upstream() as one, recording_upstream() as two:
            yield Upstreams(one, two)

    started = both()
    yield loop.run_until_complete(anext(started))
    loop.run_until_complete(started.aclose())


def with_upstreams(policy: Policy, upstreams: Upstreams) -> Policy:
    """The built policy with odd routes on upstream `one` and even routes on `two`, and HS256 issuers."""
    targets = {name: Upstream(name, rec.url) for name, rec in upstreams.items()}
    routes = tuple(replace(route, upstream=targets["one" if route.index % 2 else "two"]) for route in policy.routes)
    issuers = tuple(Issuer(name, secret_env=name, secrets=(SECRETS[name].encode(),)) for name in ISSUER_NAMES)
    return Policy(routes=routes, upstreams=tuple(targets.values()), issuers=issuers, source="fuzzed policy")


async def one_request(policy: Policy, method: str, target: str, token: str) -> int:
    config = gateway_settings("http://127.0.0.1:1")
    running = await open_gateway(config, policy, host="127.0.0.1", port=0)
    try:
        head = f"{method} {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n"
        if method in ("POST", "PUT", "PATCH"):
            head += "Content-Length: 0\r\n"
        return status_of(await raw_request(running.port, head.encode() + b"\r\n"))
    finally:
        await running.stop()


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given_a_policy_and_a_request
def test_nothing_reaches_an_upstream_unless_a_route_allows_it(
    loop: asyncio.AbstractEventLoop,
    upstreams: Upstreams,
    routes: list[Spec],
    data: st.DataObject,
    method: str,
    issuer: str,
    claims: dict[str, Any],
    query: str,
) -> None:
    upstreams.clear()
    target = draw_target(data, routes) + query
    if not target.isascii():
        return  # not a request line a client can send as text (the parser tests cover raw bytes)
    # "i3" is no issuer of the policy: its tokens do not verify, which the model sees as an issuer not listed.
    token = jwt.encode({"sub": "alice", "exp": 2**31 - 1, **claims}, SECRETS[issuer], algorithm="HS256")
    status, index, _ = model(routes, method, target, issuer, claims)
    answered = loop.run_until_complete(one_request(with_upstreams(build(routes), upstreams), method, target, token))
    event(f"expected {status}")
    if status is None:
        canonical = target.partition("?")[0]
        if canonical != "/" and canonical.endswith("/"):
            canonical = canonical[:-1]
        canonical += query
        assert index is not None
        assert answered == 200
        assert upstreams.received() == [("one" if index % 2 else "two", method, canonical)]
    else:
        assert answered == status
        assert upstreams.received() == []
