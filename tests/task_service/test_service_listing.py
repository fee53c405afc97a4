"""The list route: filters, sorting, search and paging."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event

from tests.task_service.signer import Api


async def _list(api: Api, query: str = "", user: str = "alice") -> tuple[list[dict[str, Any]], int]:
    response = await api.request("GET", f"/api/{user}/tasks{query}", user=user)
    assert response.status_code == 200, response.text
    return response.json(), int(response.headers["x-total-count"])


async def _titles(api: Api, query: str) -> list[str]:
    tasks, _ = await _list(api, query)
    return [t["title"] for t in tasks]


async def test_default_is_newest_first_with_total(api: Api) -> None:
    for title in ["one", "two", "three"]:
        await api.create(title=title)
    await api.create(user="bob", title="bobs")
    tasks, total = await _list(api)
    assert [t["title"] for t in tasks] == ["three", "two", "one"]
    assert total == 3


async def test_status_filter(api: Api) -> None:
    await api.create(title="open")
    await api.create(title="done", completed=True)
    assert await _titles(api, "?status=pending") == ["open"]
    assert await _titles(api, "?status=completed") == ["done"]
    assert await _titles(api, "?status=all") == ["done", "open"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("created", ["banana", "apple", "Cherry"]),
        ("-created", ["Cherry", "apple", "banana"]),
        ("title", ["apple", "banana", "Cherry"]),
        ("-title", ["Cherry", "banana", "apple"]),
        ("updated", ["apple", "Cherry", "banana"]),
        ("-updated", ["banana", "Cherry", "apple"]),
    ],
)
async def test_sorting(api: Api, sort: str, expected: list[str]) -> None:
    banana = await api.create(title="banana")
    await api.create(title="apple")
    await api.create(title="Cherry")
    # Touch banana last so "updated" differs from "created".
    response = await api.request("PATCH", f"/api/alice/tasks/{banana['id']}", json={"description": "ripe"})
    assert response.status_code == 200
    assert await _titles(api, f"?sort={sort}") == expected


async def test_search_is_case_insensitive_over_title_and_description(api: Api) -> None:
    await api.create(title="Buy MILK")
    await api.create(title="call mum", description="about the milkman")
    await api.create(title="unrelated")
    tasks, total = await _list(api, "?q=milk&sort=created")
    assert [t["title"] for t in tasks] == ["Buy MILK", "call mum"]
    assert total == 2


async def test_search_treats_like_wildcards_literally(api: Api) -> None:
    await api.create(title="100% done")
    await api.create(title="1000 done")
    await api.create(title="snake_case")
    await api.create(title="snakeXcase")
    await api.create(title=r"back\slash")
    assert await _titles(api, "?q=0%25") == ["100% done"]
    assert await _titles(api, "?q=e_c") == ["snake_case"]
    assert await _titles(api, "?q=k%5Cs") == [r"back\slash"]


async def test_limit_and_offset_page_through_with_full_total(api: Api) -> None:
    for i in range(5):
        await api.create(title=f"t{i}")
    page, total = await _list(api, "?sort=created&limit=2&offset=2")
    assert [t["title"] for t in page] == ["t2", "t3"]
    assert total == 5
    page, total = await _list(api, "?sort=created&limit=2&offset=4")
    assert [t["title"] for t in page] == ["t4"]
    page, total = await _list(api, "?offset=10")
    assert (page, total) == ([], 5)


async def test_total_counts_matches_not_just_the_page(api: Api) -> None:
    for i in range(3):
        await api.create(title=f"match {i}")
    await api.create(title="other")
    page, total = await _list(api, "?q=match&limit=1")
    assert len(page) == 1
    assert total == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?status=done", "status"),
        ("?sort=priority", "sort"),
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
        ("?limit=ten", "limit"),
        ("?offset=-1", "offset"),
    ],
)
async def test_invalid_list_parameters_are_422(api: Api, query: str, field: str) -> None:
    response = await api.request("GET", f"/api/alice/tasks{query}")
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [e["loc"] for e in detail] == [["query", field]]


async def test_limit_200_is_allowed(api: Api) -> None:
    response = await api.request("GET", "/api/alice/tasks?limit=200")
    assert response.status_code == 200


async def test_a_page_and_its_total_are_one_statement(api: Api, app: FastAPI) -> None:
    """The total comes with the page: one database round trip per list (a page past the end needs a second)."""
    for title in ["one", "two", "three"]:
        await api.create(title=title)
    statements: list[str] = []

    def listener(_connection: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    engine = app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", listener)
    try:
        page, total = await _list(api, "?limit=2")
        assert (len(page), total, len(statements)) == (2, 3, 1)
        page, total = await _list(api, "?offset=5")
        assert (page, total, len(statements)) == ([], 3, 3)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
