"""Graceful shutdown with a real gateway process: in-flight requests finish, new connections are refused."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.processes import RunningProcess, clean_env, free_port, start_process
from tests.support.services import new_secret

IN_FLIGHT = 12


async def wait_until(condition: Callable[[], bool], deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    release = asyncio.Event()
    arrived: list[str] = []

    async def slow(request: web.Request) -> web.Response:
        arrived.append(request.raw_path)
        await release.wait()
        return web.json_response({"path": request.raw_path})

    async def ready(_request: web.Request) -> web.Response:
        return web.json_response({"ready": True})

    upstream_app = web.Application()
    upstream_app.router.add_get("/readyz", ready)
    upstream_app.router.add_get("/{tail:.*}", slow)
    upstream = TestServer(upstream_app, host="127.0.0.1")
    await upstream.start_server()

    user_secret, port = new_secret(), free_port()
    env = clean_env(
        {
            "GATEWAY_PORT": str(port),
            "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{upstream.port}",
            "GATEWAY_JWT_SECRET": user_secret,
            "GATEWAY_INTERNAL_SECRET": new_secret(),
            "GATEWAY_SHUTDOWN_TIMEOUT_S": "20",
        }
    )
    url = f"http://127.0.0.1:{port}"
    gateway: RunningProcess = await asyncio.to_thread(
        start_process, "gateway", [sys.executable, "-m", "gateway"], env, f"{url}/healthz", tmp_path
    )
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, user_secret, algorithm="HS256")
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client:

            async def call(i: int) -> tuple[int, object]:
                resp = await client.get(f"{url}/api/alice/tasks?i={i}", headers={"Authorization": f"Bearer {token}"})
                return resp.status, await resp.json()

            calls = [asyncio.create_task(call(i)) for i in range(IN_FLIGHT)]
            await wait_until(lambda: len(arrived) == IN_FLIGHT)
            os.kill(gateway.popen.pid, signal.SIGTERM)

            async def refused() -> bool:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    return True
                writer.close()
                return False

            end = time.monotonic() + 10
            while not await refused():
                assert time.monotonic() < end, "gateway kept accepting new connections while draining"
                await asyncio.sleep(0.01)
            assert gateway.popen.poll() is None, "gateway exited before in-flight requests finished"
            release.set()
            results = await asyncio.gather(*calls)
        assert [status for status, _ in results] == [200] * IN_FLIGHT
        assert sorted(body["path"] for _, body in results) == sorted(  # type: ignore[index]
            f"/api/alice/tasks?i={i}" for i in range(IN_FLIGHT)
        )
        assert await asyncio.to_thread(gateway.popen.wait, 15) == 0
    finally:
        release.set()
        gateway.stop()
        await upstream.close()
