"""Concurrency through the real gateway and the real task service, on SQLite and on PostgreSQL.

No acknowledged write may be lost or duplicated: many users writing at once, conflicting If-Match
updates of one task, and a create retried with its Idempotency-Key after the connection dropped.
"""

from __future__ import annotations

import asyncio
import collections
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import httpx
import jwt
import pytest

from tests.support.processes import POLL_INTERVAL_S
from tests.support.services import new_secret, running_gateway, running_task_service
from tests.task_service.postgres import PostgresServer, in_thread

USERS = 100
WRITES_PER_USER = 20
CONFLICTING = 20


@dataclass
class Stack:
    gateway_url: str
    user_secret: str

    def headers(self, user: str) -> dict[str, str]:
        now = int(time.time())
        token = jwt.encode({"sub": user, "iat": now, "exp": now + 600}, self.user_secret, algorithm="HS256")
        return {"Authorization": f"Bearer {token}"}

    def client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        return httpx.AsyncClient(base_url=self.gateway_url, limits=limits, timeout=60)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work: Path = tmp_path_factory.mktemp(f"concurrency-{request.param}")
    database_url = None
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        database_url = in_thread(server.create_database("e2e_concurrency"))
    user_secret, internal_secret = new_secret(), new_secret()
    with (
        running_task_service(work, internal_secret, database_url) as service,
        running_gateway(work, service.url, internal_secret, {"GATEWAY_JWT_SECRET": user_secret}) as gateway,
    ):
        yield Stack(gateway.url, user_secret)


@pytest.mark.slow
async def test_many_users_writing_at_once_lose_and_duplicate_nothing(stack: Stack) -> None:
    users = [f"load-{i:03d}" for i in range(USERS)]
    headers = {user: stack.headers(user) for user in users}
    # aiohttp rather than httpx for the load itself: its client costs far less CPU per request, and the
    # client shares the machine with both servers.
    connector = aiohttp.TCPConnector(limit=100)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)

    async with aiohttp.ClientSession(stack.gateway_url, connector=connector, timeout=timeout) as session:

        async def create_then_update(user: str, n: int) -> tuple[str, int, str]:
            async with session.post(f"/api/{user}/tasks", headers=headers[user], json={"title": f"task {n}"}) as r:
                assert r.status == 201, await r.text()
                task_id = (await r.json())["id"]
            note = f"{user} note {n}"
            async with session.patch(
                f"/api/{user}/tasks/{task_id}", headers=headers[user], json={"description": note}
            ) as r:
                assert r.status == 200, await r.text()
            return user, task_id, note

        async def stored(user: str) -> dict[int, str]:
            async with session.get(f"/api/{user}/tasks", params={"limit": "200"}, headers=headers[user]) as r:
                assert r.status == 200
                assert r.headers["X-Total-Count"] == str(WRITES_PER_USER)
                return {task["id"]: task["description"] for task in await r.json()}

        acknowledged = await asyncio.gather(
            *(create_then_update(user, n) for user in users for n in range(WRITES_PER_USER))
        )
        found = await asyncio.gather(*(stored(user) for user in users))

    expected: dict[str, dict[int, str]] = collections.defaultdict(dict)
    for user, task_id, note in acknowledged:
        expected[user][task_id] = note
    assert sum(len(tasks) for tasks in expected.values()) == USERS * WRITES_PER_USER
    assert dict(zip(users, found, strict=True)) == expected


@pytest.mark.slow
async def test_conflicting_if_match_updates_have_one_winner(stack: Stack) -> None:
    auth = stack.headers("contender")
    async with stack.client() as client:
        created = await client.post("/api/contender/tasks", headers=auth, json={"title": "shared"})
        etag = created.headers["ETag"]
        url = f"/api/contender/tasks/{created.json()['id']}"
        responses = await asyncio.gather(
            *(
                client.put(url, headers={**auth, "If-Match": etag}, json={"title": f"writer {i}"})
                for i in range(CONFLICTING)
            )
        )
        assert collections.Counter(r.status_code for r in responses) == {200: 1, 412: CONFLICTING - 1}
        winner = next(r for r in responses if r.status_code == 200)
        final = await client.get(url, headers=auth)
    assert final.json()["title"] == winner.json()["title"]
    assert final.headers["ETag"] == winner.headers["ETag"] != etag


def _send_and_drop(gateway_url: str, path: str, headers: dict[str, str], body: bytes) -> socket.socket:
    """Write a whole request on a raw connection and leave it unread: the caller drops it later."""
    parts = urlsplit(gateway_url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{head}\r\n"
    )
    sock.sendall(request.encode() + body)
    return sock


@pytest.mark.slow
async def test_create_retried_after_a_dropped_connection_makes_one_task(stack: Stack) -> None:
    user, key = "retrier", "create-7f3a"
    auth = stack.headers(user)
    body = {"title": "exactly once"}
    sock = _send_and_drop(
        stack.gateway_url, f"/api/{user}/tasks", {**auth, "Idempotency-Key": key}, json.dumps(body).encode()
    )
    async with stack.client() as client:
        try:
            # The first attempt reaches the service; the client never reads its answer.
            deadline = time.monotonic() + 30
            while True:
                listing = await client.get(f"/api/{user}/tasks", headers=auth)
                if listing.headers["X-Total-Count"] == "1" or time.monotonic() > deadline:
                    break
                await asyncio.sleep(POLL_INTERVAL_S)
            assert listing.headers["X-Total-Count"] == "1"
        finally:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()  # a reset, as when a mobile connection dies
        retries = await asyncio.gather(
            *(client.post(f"/api/{user}/tasks", headers={**auth, "Idempotency-Key": key}, json=body) for _ in range(5))
        )
        listing = await client.get(f"/api/{user}/tasks", headers=auth)
    assert {r.status_code for r in retries} == {201}
    assert {r.headers.get("Idempotent-Replayed") for r in retries} == {"true"}
    assert {r.json()["id"] for r in retries} == {listing.json()[0]["id"]}
    assert listing.headers["X-Total-Count"] == "1"
