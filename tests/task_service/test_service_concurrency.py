"""Concurrent requests against one service: no lost update, no duplicate create, one winner per version."""

from __future__ import annotations

import asyncio
import collections

from tests.task_service.signer import Api

CONCURRENCY = 20


async def test_conflicting_if_match_updates_have_exactly_one_winner(api: Api) -> None:
    created = await api.create(title="contended")
    url = f"/api/alice/tasks/{created['id']}"
    responses = await asyncio.gather(
        *(
            api.request("PUT", url, json={"title": f"writer {i}"}, headers={"If-Match": '"1"'})
            for i in range(CONCURRENCY)
        )
    )
    statuses = collections.Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 412: CONCURRENCY - 1}
    winner = next(r for r in responses if r.status_code == 200).json()
    final = await api.request("GET", url)
    assert final.json()["title"] == winner["title"]
    assert final.headers["etag"] == '"2"'


async def test_concurrent_toggles_lose_no_update(api: Api) -> None:
    created = await api.create()
    url = f"/api/alice/tasks/{created['id']}/complete"
    responses = await asyncio.gather(*(api.request("PATCH", url) for _ in range(CONCURRENCY + 1)))
    assert {r.status_code for r in responses} == {200}
    # Each toggle saw a distinct version: none was applied on top of a stale read.
    assert sorted(int(r.headers["etag"].strip('"')) for r in responses) == list(range(2, CONCURRENCY + 3))
    final = await api.request("GET", f"/api/alice/tasks/{created['id']}")
    assert final.json()["completed"] is True  # an odd number of toggles


async def test_concurrent_retries_with_one_key_create_one_task(api: Api) -> None:
    responses = await asyncio.gather(
        *(
            api.request("POST", "/api/alice/tasks", json={"title": "once"}, headers={"Idempotency-Key": "retry-me"})
            for _ in range(CONCURRENCY)
        )
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == CONCURRENCY - 1
    listing = await api.request("GET", "/api/alice/tasks")
    assert listing.headers["x-total-count"] == "1"


async def test_concurrent_creates_and_updates_across_users_are_all_kept(api: Api) -> None:
    users = [f"user{i}" for i in range(5)]

    async def work(user: str, n: int) -> tuple[str, int, str]:
        created = await api.request("POST", f"/api/{user}/tasks", user=user, json={"title": f"{user} {n}"})
        assert created.status_code == 201
        task_id = created.json()["id"]
        patched = await api.request(
            "PATCH", f"/api/{user}/tasks/{task_id}", user=user, json={"description": f"note {n}"}
        )
        assert patched.status_code == 200
        return user, task_id, f"note {n}"

    acknowledged = await asyncio.gather(*(work(user, n) for user in users for n in range(8)))
    for user in users:
        listing = await api.request("GET", f"/api/{user}/tasks?limit=200", user=user)
        stored = {t["id"]: t["description"] for t in listing.json()}
        mine = {task_id: note for owner, task_id, note in acknowledged if owner == user}
        assert stored == mine
