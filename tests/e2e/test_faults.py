"""Faults with real processes: the task service killed and restarted under load, and its database gone.

While the service is down every request through the gateway must be a 502 (never a hang, never a 500); once
it is back, requests succeed again on fresh upstream connections; and the gateway's memory stays flat. While
the database is unreachable the service answers 503 and is not ready; afterwards it recovers by itself.
"""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import signal
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import jwt

from tests.support.processes import clean_env, free_port, rss_kib, running, start_process
from tests.support.services import new_secret, running_gateway, running_task_service
from tests.task_service.postgres import PostgresServer

LOAD_CONNECTIONS = 16
# An answer whose head had reached the gateway when the kill landed is streamed, so its cut-off body reaches the
# client as a reset connection (docs/contract.md, "Response framing"), never as a complete-looking answer.
CUT = 0


async def test_service_killed_and_restarted_under_load(tmp_path: Path) -> None:
    internal, user = new_secret(), new_secret()
    port = free_port()
    service_env = clean_env(
        {
            "TASKS_PORT": str(port),
            "TASKS_INTERNAL_SECRET": internal,
            "TASKS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}",
        }
    )
    argv = [sys.executable, "-m", "task_service"]
    health = f"http://127.0.0.1:{port}/healthz"
    service = await asyncio.to_thread(start_process, "service", argv, service_env, health, tmp_path)
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, user, algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}"}
    with running_gateway(tmp_path, f"http://127.0.0.1:{port}", internal, {"GATEWAY_JWT_SECRET": user}) as gateway:
        statuses: collections.Counter[int] = collections.Counter()
        phase = {"name": "up"}
        by_phase: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
        stop = asyncio.Event()

        async def load(client: aiohttp.ClientSession) -> None:
            while not stop.is_set():
                try:
                    async with client.get(f"{gateway.url}/api/alice/tasks", headers=headers) as resp:
                        await resp.read()
                        status = resp.status
                except (aiohttp.ClientPayloadError, aiohttp.ClientOSError):
                    status = CUT
                statuses[status] += 1
                by_phase[phase["name"]][status] += 1

        async def wait_for(condition: collections.abc.Callable[[], bool], deadline_s: float = 20) -> None:
            end = time.monotonic() + deadline_s
            while not condition():
                assert time.monotonic() < end, dict(statuses)
                await asyncio.sleep(0.02)

        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as client:
            workers = [asyncio.create_task(load(client)) for _ in range(LOAD_CONNECTIONS)]
            await wait_for(lambda: by_phase["up"][200] >= 200)
            rss_before = rss_kib(gateway.process.popen.pid)

            service.popen.send_signal(signal.SIGKILL)
            await asyncio.to_thread(service.popen.wait, 10)
            phase["name"] = "down"
            await wait_for(lambda: by_phase["down"][502] >= 200)

            service = await asyncio.to_thread(start_process, "service", argv, service_env, health, tmp_path)
            phase["name"] = "restarted"
            await wait_for(lambda: by_phase["restarted"][200] >= 500)
            stop.set()
            await asyncio.gather(*workers)
        rss_after = rss_kib(gateway.process.popen.pid)
        service.stop()

    assert set(statuses) <= {200, 502, CUT}, dict(statuses)
    assert set(by_phase["down"]) <= {502, 200, CUT}  # 200s and cuts only from answers in flight at the kill
    assert statuses[CUT] <= LOAD_CONNECTIONS and by_phase["restarted"][CUT] == 0, dict(by_phase)
    assert by_phase["restarted"][200] >= 500
    assert rss_after - rss_before < 20 * 1024, (rss_before, rss_after)


def test_sigkilled_upstream_mid_request_is_502(tmp_path: Path) -> None:
    """A service that dies while holding a request answers that request with 502 via the gateway."""
    upstream = tmp_path / "hang.py"
    upstream.write_text(
        "import socket, os\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('127.0.0.1', int(os.environ['PORT']))); s.listen()\n"
        "print('listening', flush=True)\n"
        "while True:\n"
        "    c, _ = s.accept(); data = c.recv(65536)\n"
        "    if data.startswith(b'GET /readyz') or data.startswith(b'GET /healthz'):\n"
        "        c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\n{}'); c.close()\n"
        "    else:\n"
        "        os._exit(1)\n"
    )
    port = free_port()
    env = clean_env({"PORT": str(port)})
    internal, user = new_secret(), new_secret()
    with (
        running("hang", [sys.executable, str(upstream)], env, f"http://127.0.0.1:{port}/healthz", tmp_path),
        running_gateway(tmp_path, f"http://127.0.0.1:{port}", internal, {"GATEWAY_JWT_SECRET": user}) as gateway,
    ):
        token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, user, algorithm="HS256")
        resp = httpx.get(f"{gateway.url}/api/alice/tasks", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert resp.status_code == 502
        assert resp.json() == {"detail": "upstream unavailable"}


async def _set_connections(server: PostgresServer, database: str, allowed: bool) -> None:
    """Take one database away from its clients (and give it back) without stopping the shared server."""
    connection = await server.connect()
    try:
        await connection.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database
            )
    finally:
        await connection.close()


async def test_database_outage_is_503_and_recovers(tmp_path: Path, postgres: PostgresServer) -> None:
    database = "faults_outage"
    url = await postgres.create_database(database)
    internal, user = new_secret(), new_secret()
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, user, algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}"}
    with (
        running_task_service(tmp_path, internal, url) as service,
        running_gateway(tmp_path, service.url, internal, {"GATEWAY_JWT_SECRET": user}) as gateway,
    ):
        async with httpx.AsyncClient(timeout=30) as client:
            created = await client.post(f"{gateway.url}/api/alice/tasks", json={"title": "before"}, headers=headers)
            assert created.status_code == 201
            await _set_connections(postgres, database, allowed=False)
            try:
                during = await client.get(f"{gateway.url}/api/alice/tasks", headers=headers)
                assert during.status_code == 503
                assert during.json() == {"detail": "database unavailable"}
                assert (await client.get(f"{service.url}/readyz")).status_code == 503
                assert (await client.get(f"{gateway.url}/readyz")).status_code == 503
                write = await client.post(f"{gateway.url}/api/alice/tasks", json={"title": "lost"}, headers=headers)
                assert write.status_code == 503
            finally:
                await _set_connections(postgres, database, allowed=True)
            deadline = time.monotonic() + 20
            while (after := await client.get(f"{gateway.url}/api/alice/tasks", headers=headers)).status_code != 200:
                assert after.status_code == 503 and time.monotonic() < deadline
                await asyncio.sleep(0.1)
            assert [t["title"] for t in after.json()] == ["before"]
            assert (await client.get(f"{service.url}/readyz")).status_code == 200
