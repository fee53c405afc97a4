"""Shared fixtures for tests that run the gateway in-process in front of a recording upstream.

The recording upstream keeps the raw bytes it was sent, so tests can assert exactly what crossed the gateway,
and — just as important — that a rejected request never arrived at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from gateway.auth.verifier import TokenVerifier
from gateway.pipeline import Pipeline
from gateway.policy.default import default_policy
from gateway.policy.match import Router
from gateway.server import RunningGateway, open_gateway
from gateway.settings import GatewaySettings
from tests.support.policy import policy_file_under_test

JWT_SECRET = "test-user-token-secret-" + "u" * 24
INTERNAL_SECRET = "test-internal-secret-" + "i" * 24


def make_token(
    sub: Any = "alice", *, secret: str = JWT_SECRET, ttl: int = 900, alg: str = "HS256", **claims: Any
) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + ttl, **claims}
    if sub is None:
        del payload["sub"]
    return jwt.encode(payload, secret, algorithm=alg)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Received:
    method: str
    raw_path: str
    raw_headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> list[str]:
        key = name.lower().encode()
        return [v.decode("latin-1") for k, v in self.raw_headers if k.lower() == key]

    def names(self) -> set[str]:
        return {k.decode("latin-1").lower() for k, _ in self.raw_headers}


@dataclass
class Recorder:
    """An upstream that records every request and answers with `reply` (replaceable per test)."""

    received: list[Received] = field(default_factory=list)
    reply: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(Received(request.method, request.raw_path, list(request.raw_headers), body))
        if self.reply is not None:
            return await self.reply(request)
        return web.json_response([{"ok": True}], headers={"X-Total-Count": "1"})

    async def ready(self, _request: web.Request) -> web.Response:
        return web.json_response({"ready": True})


@functools.cache
def task_router() -> Router:
    """The built-in default policy's router: the task API's routes exactly as the gateway matches them."""
    settings = GatewaySettings(jwt_secret=JWT_SECRET, internal_secret=INTERNAL_SECRET)
    return Router(default_policy(settings))


def gateway_settings(upstream_url: str, **overrides: Any) -> GatewaySettings:
    """Settings for a gateway in front of `upstream_url`; with TASKGATE_TEST_POLICY_FILE (tests/support/policy.py)
    that policy file, pointed at `upstream_url`, instead of the built-in default policy."""
    # A test's own policy file (or policy_file=None: the default policy) is used as given; it names its upstreams
    # itself (GATEWAY_UPSTREAM_URL beside it is refused).
    policy_file = overrides["policy_file"] if "policy_file" in overrides else policy_file_under_test(upstream_url)
    upstream: dict[str, Any] = {"upstream_url": upstream_url} if policy_file is None else {"policy_file": policy_file}
    values: dict[str, Any] = {
        **upstream,
        "jwt_secret": JWT_SECRET,
        "internal_secret": INTERNAL_SECRET,
        "cors_origins": ("http://app.example",),
        "upstream_timeout_s": 2.0,
    }
    values.update(overrides)
    return GatewaySettings(**values)


@contextlib.asynccontextmanager
async def recording_upstream() -> AsyncIterator[Recorder]:
    """A recording upstream on a loopback port (any number of them: one per upstream a policy names)."""
    rec = Recorder()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/readyz", rec.ready)
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    rec.server = TestServer(app, host="127.0.0.1")
    await rec.server.start_server()
    try:
        yield rec
    finally:
        await rec.server.close()


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    async with recording_upstream() as rec:
        yield rec


@dataclass
class GatewayUnderTest:
    """A gateway started through gateway.server.open_gateway (production limits, deadlines, error pages)."""

    running: RunningGateway

    @property
    def port(self) -> int:
        return self.running.port

    @property
    def pipeline(self) -> Pipeline:
        return self.running.pipeline

    @property
    def verifier(self) -> TokenVerifier:
        """The running policy's token verifier (its cache counters)."""
        runtime = self.pipeline.runtime
        assert runtime is not None
        return runtime.verifier

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def make_url(self, path: str) -> URL:
        """Like aiohttp's TestServer.make_url: the path is quoted by yarl (raw-byte tests use raw sockets)."""
        return URL(self.url).join(URL(path))


GatewayFactory = Callable[..., Awaitable[GatewayUnderTest]]


@pytest.fixture
async def start_gateway(recorder: Recorder) -> AsyncIterator[GatewayFactory]:
    """Starts a gateway on a real loopback port with production HTTP limits; settings overridable."""
    started: list[RunningGateway] = []

    async def start(**overrides: Any) -> GatewayUnderTest:
        upstream = overrides.pop("upstream_url", recorder.url)
        running = await open_gateway(gateway_settings(upstream, **overrides), host="127.0.0.1", port=0)
        started.append(running)
        return GatewayUnderTest(running)

    yield start
    for running in started:
        await running.stop()


async def raw_request(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes exactly as given on one connection; return all bytes read until the peer closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    except TimeoutError:
        pass
    finally:
        writer.close()
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])
