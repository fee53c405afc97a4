"""Keyset pagination: `cursor=` and `X-Next-Cursor`, alongside limit/offset."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.task_service.signer import Api

SORTS = ["created", "-created", "updated", "-updated", "title", "-title"]


def _forge(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()


async def _walk(api: Api, query: str, user: str = "alice") -> list[int]:
    """Every id, following X-Next-Cursor from the first page to the last."""
    ids: list[int] = []
    url = f"/api/{user}/tasks?{query}"
    for _ in range(100):
        response = await api.request("GET", url, user=user)
        assert response.status_code == 200, response.text
        ids += [t["id"] for t in response.json()]
        cursor = response.headers.get("x-next-cursor")
        if cursor is None:
            return ids
        url = f"/api/{user}/tasks?{query}&cursor={cursor}"
    raise AssertionError("pagination did not end")


async def _seed(api: Api) -> None:
    for title in ["b", "a", "same", "C", "same", "d", "same"]:
        await api.create(title=title)
    await api.request("PATCH", "/api/alice/tasks/1", json={"completed": True})


@pytest.mark.parametrize("sort", SORTS)
async def test_cursor_walk_matches_the_full_listing(api: Api, sort: str) -> None:
    await _seed(api)
    everything = await api.request("GET", f"/api/alice/tasks?sort={sort}&limit=200")
    expected = [t["id"] for t in everything.json()]
    assert len(expected) == 7
    assert await _walk(api, f"sort={sort}&limit=2") == expected


async def test_cursor_respects_filters(api: Api) -> None:
    await _seed(api)
    assert len(await _walk(api, "status=pending&limit=2")) == 6
    assert len(await _walk(api, "q=same&sort=title&limit=1")) == 3


async def test_last_page_has_no_next_cursor(api: Api) -> None:
    await api.create()
    response = await api.request("GET", "/api/alice/tasks?limit=1")
    assert "x-next-cursor" not in response.headers
    await api.create()
    response = await api.request("GET", "/api/alice/tasks?limit=1")
    assert "x-next-cursor" in response.headers


async def test_pages_are_stable_under_concurrent_inserts(api: Api) -> None:
    for i in range(6):
        await api.create(title=f"old {i}")
    first = await api.request("GET", "/api/alice/tasks?limit=3")
    seen = [t["title"] for t in first.json()]
    for i in range(3):
        await api.create(title=f"new {i}")
    rest = await _walk(api, f"limit=3&cursor={first.headers['x-next-cursor']}")
    titles = seen + [f"old {i - 1}" for i in rest]  # ids 1..6 are "old 0".."old 5"
    assert titles == [f"old {i}" for i in range(5, -1, -1)]


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!not-base64!!!",
        _forge("a string"),
        _forge({"s": "-created", "k": "2026-01-01T00:00:00+00:00"}),
        _forge({"s": "-created", "k": "2026-01-01T00:00:00+00:00", "i": True}),
        _forge({"s": "-created", "k": "2026-01-01T00:00:00+00:00", "i": 0}),
        _forge({"s": "-created", "k": "2026-01-01T00:00:00", "i": 1}),
        _forge({"s": "-created", "k": "yesterday", "i": 1}),
        _forge({"s": "-created", "k": 5, "i": 1}),
        _forge({"s": "title", "k": "a", "i": 1}),
        _forge({"s": "-created", "k": "2026-01-01T00:00:00+00:00", "i": 1, "u": "bob"}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        _forge({"s": "title", "k": "nul\x00", "i": 1}),
        _forge({"s": "title", "k": "\ud800", "i": 1}),
    ],
)
async def test_invalid_cursor_is_422(api: Api, cursor: str) -> None:
    response = await api.request("GET", f"/api/alice/tasks?cursor={cursor}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


async def test_cursor_with_offset_is_422(api: Api) -> None:
    cursor = _forge({"s": "-created", "k": "2026-01-01T00:00:00+00:00", "i": 1})
    response = await api.request("GET", f"/api/alice/tasks?offset=1&cursor={cursor}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "offset"]


async def test_a_forged_cursor_never_reaches_another_users_tasks(api: Api) -> None:
    for i in range(3):
        await api.create(user="alice", title=f"alice {i}")
    await api.create(user="bob", title="bob 0")
    seen: list[str] = []
    for key, task_id in [("9999-12-31T00:00:00+00:00", 2**62), ("0001-01-01T00:00:00+00:00", 1)]:
        for sort in ["created", "-created"]:
            cursor = _forge({"s": sort, "k": key, "i": task_id})
            response = await api.request("GET", f"/api/bob/tasks?sort={sort}&cursor={cursor}", user="bob")
            assert response.status_code == 200
            seen += [t["title"] for t in response.json()]
    # Positions before the first and after the last task: bob's one task twice, alice's never.
    assert seen == ["bob 0", "bob 0"]


async def test_total_after_a_cursor_counts_every_match_even_past_the_end(api: Api) -> None:
    """The total is of all matching tasks, not of those after the cursor; a page emptied by a delete still has it."""
    for title in ["one", "two", "three"]:
        await api.create(title=title)
    first = await api.request("GET", "/api/alice/tasks?sort=created&limit=2")
    cursor = first.headers["x-next-cursor"]
    second = await api.request("GET", f"/api/alice/tasks?sort=created&limit=2&cursor={cursor}")
    assert ([t["title"] for t in second.json()], second.headers["x-total-count"]) == (["three"], "3")
    assert (await api.request("DELETE", "/api/alice/tasks/3")).status_code == 204
    emptied = await api.request("GET", f"/api/alice/tasks?sort=created&limit=2&cursor={cursor}")
    assert (emptied.json(), emptied.headers["x-total-count"]) == ([], "2")
