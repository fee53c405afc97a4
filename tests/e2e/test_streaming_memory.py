"""A large download through the real gateway process, with its memory read from /proc.

The gateway runs as `python -m gateway` (uvloop, production settings); the upstream and the client are in
this process, so the memory measured is the gateway's alone. The assertion is a bound on memory, not on time:
a gateway that buffered the body would grow by at least its 40 MiB.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.processes import reset_peak_rss, rss_kib
from tests.support.services import new_secret, running_gateway

PIECE = bytes(range(256)) * 256  # 64 KiB
PIECES = 640  # 40 MiB
GROWTH_BOUND_KIB = 30 * 1024

pytestmark = pytest.mark.slow


async def download(request: web.Request) -> web.StreamResponse:
    """40 MiB written piece by piece, with a Content-Length or (`?chunked`) without one."""
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    if "chunked" not in request.query:
        response.content_length = len(PIECE) * PIECES
    await response.prepare(request)
    for _ in range(PIECES):
        await response.write(PIECE)
    await response.write_eof()
    return response


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/api/{user}/tasks", download)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


@pytest.mark.parametrize("query", ["", "?chunked"], ids=["content-length", "chunked"])
async def test_a_40_mib_download_passes_with_bounded_gateway_memory(tmp_path: Path, upstream: str, query: str) -> None:
    user_secret = new_secret()
    now = int(time.time())
    token = jwt.encode({"sub": "alice", "iat": now, "exp": now + 300}, user_secret, algorithm="HS256")
    settings = {"GATEWAY_JWT_SECRET": user_secret, "GATEWAY_ACCESS_LOG": "false"}
    with running_gateway(tmp_path, upstream, new_secret(), settings) as gateway:
        pid = gateway.process.popen.pid
        url = f"{gateway.url}/api/alice/tasks{query}"
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            async with session.get(url + ("&" if query else "?") + "warm=up", headers=headers) as warm:
                await warm.read()  # every code path of the relay has run once before the baseline is taken
            before = rss_kib(pid)
            reset_peak_rss(pid)
            digest, size = hashlib.sha256(), 0
            async with session.get(url, headers=headers) as response:
                status, framing = response.status, response.headers.get("Transfer-Encoding")
                async for chunk in response.content.iter_any():
                    digest.update(chunk)
                    size += len(chunk)
            peak = rss_kib(pid, "VmHWM")
    assert status == 200 and size == len(PIECE) * PIECES
    assert digest.hexdigest() == hashlib.sha256(PIECE * PIECES).hexdigest()
    assert framing == ("chunked" if query else None)
    assert peak - before < GROWTH_BOUND_KIB, f"gateway grew by {(peak - before) // 1024} MiB during the download"
