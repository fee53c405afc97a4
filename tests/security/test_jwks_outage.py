"""A slow, hanging or broken JWKS endpoint: cached keys keep working, unknown kids are answered in bounded time,
and a storm of unknown kids causes at most one refetch per cooldown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from tests.gateway.test_jwks import ISSUER, Issuer
from tests.gateway_fixtures import Recorder
from tests.security.conftest import Edge, EdgeFactory
from tests.security.wire import exchange, request


@dataclass
class Endpoint:
    """Serves `issuer`'s keys until told to hang (never answer) or trickle (headers, then a byte at a time)."""

    issuer: Issuer
    mode: str = "ok"
    url: str = ""

    async def handle(self, req: web.Request) -> web.StreamResponse:
        if self.mode == "ok":
            return await self.issuer.jwks(req)  # counts the fetch itself
        self.issuer.fetches += 1
        if self.mode == "hang":
            await asyncio.Event().wait()
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "100000"})
        await resp.prepare(req)
        for _ in range(100000):  # trickle: a byte every 50 ms, far slower than any timeout
            await resp.write(b" ")
            await asyncio.sleep(0.05)
        return resp


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    ep = Endpoint(Issuer())
    app = web.Application()
    app.router.add_get("/jwks", ep.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    ep.url = f"http://127.0.0.1:{runner.addresses[0][1]}/jwks"
    yield ep
    await runner.cleanup()


async def start(edge: EdgeFactory, ep: Endpoint, **overrides: float) -> Edge:
    settings = {"jwks_timeout_s": 0.5, "jwks_refetch_cooldown_s": 30.0, **overrides}
    return await edge(jwks_url=ep.url, jwt_issuer=ISSUER, jwt_audience=(ISSUER,), **settings)


async def status_within(gw: Edge, token: str, bound_s: float = 4.0) -> int:
    """The answer's status; the exchange fails the test if no answer arrives within bound_s (a liveness bound)."""
    ex = await exchange(gw.port, request("GET", "/api/alice/tasks", token=token), timeout=bound_s)
    assert ex.closed, "no answer within the bound"
    return ex.status


@pytest.mark.parametrize("mode", ["hang", "trickle"])
async def test_cached_keys_keep_working_while_the_jwks_stalls(
    edge: EdgeFactory, recorder: Recorder, endpoint: Endpoint, mode: str
) -> None:
    endpoint.issuer.add("k", "EdDSA")
    gw = await start(edge, endpoint, jwks_cache_s=0.001, jwks_refetch_cooldown_s=0)
    endpoint.mode = mode
    for i in range(3):  # distinct tokens, so each one needs the key (no verdict cache hit)
        assert await status_within(gw, endpoint.issuer.token("k", jti=str(i))) == 200
    assert len(recorder.received) == 3


@pytest.mark.parametrize("mode", ["hang", "trickle"])
async def test_unknown_kid_is_answered_within_the_jwks_timeout(
    edge: EdgeFactory, recorder: Recorder, endpoint: Endpoint, mode: str
) -> None:
    endpoint.issuer.add("k", "ES256")
    gw = await start(edge, endpoint)
    endpoint.mode = mode
    stranger = Issuer()
    stranger.add("unknown", "ES256")
    assert await status_within(gw, stranger.token("unknown")) == 401
    assert await status_within(gw, endpoint.issuer.token("k")) == 200  # the known key was never at risk
    assert len(recorder.received) == 1


async def test_a_storm_of_unknown_kids_refetches_once(
    edge: EdgeFactory, recorder: Recorder, endpoint: Endpoint
) -> None:
    endpoint.issuer.add("k", "EdDSA")
    gw = await start(edge, endpoint)
    assert endpoint.issuer.fetches == 1
    stranger = Issuer()
    for i in range(40):
        stranger.add(f"ghost-{i}", "EdDSA")
    statuses = await asyncio.gather(*(status_within(gw, stranger.token(kid)) for kid in stranger.keys))
    assert statuses == [401] * 40
    assert endpoint.issuer.fetches == 2
    assert recorder.received == []


@pytest.mark.parametrize(
    "body",
    [b"<html>maintenance</html>", b'{"keys": []}', b'{"keys": [{"kty": "RSA", "kid": "k", "n": "AQAB", "e": 3}]}'],
)
async def test_a_broken_key_set_does_not_replace_good_keys(
    edge: EdgeFactory, recorder: Recorder, endpoint: Endpoint, body: bytes
) -> None:
    endpoint.issuer.add("k", "EdDSA")
    gw = await start(edge, endpoint, jwks_cache_s=0.001, jwks_refetch_cooldown_s=0)
    endpoint.issuer.body_override = body
    for i in range(3):  # distinct tokens, so each one needs the key (no verdict cache hit)
        assert await status_within(gw, endpoint.issuer.token("k", jti=str(i))) == 200
    assert endpoint.issuer.fetches >= 2
    assert len(recorder.received) == 3
