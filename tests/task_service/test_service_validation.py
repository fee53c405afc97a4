"""Invalid input is a 422 in FastAPI's error shape, and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.task_service.signer import Api


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "title"]),
        ({"title": ""}, ["body", "title"]),
        ({"title": "   "}, ["body", "title"]),
        ({"title": "x" * 201}, ["body", "title"]),
        ({"title": 5}, ["body", "title"]),
        ({"title": None}, ["body", "title"]),
        ({"title": "ok", "description": "d" * 1001}, ["body", "description"]),
        ({"title": "ok", "description": 3}, ["body", "description"]),
        ({"title": "ok", "completed": "yes"}, ["body", "completed"]),
        ({"title": "ok", "completed": 1}, ["body", "completed"]),
        ({"title": "ok", "complete": True}, ["body", "complete"]),
        ({"title": "ok", "user_id": "bob"}, ["body", "user_id"]),
        ({"title": "ok", "id": 7}, ["body", "id"]),
        (["title"], ["body"]),
    ],
)
async def test_invalid_create_is_422(api: Api, body: Any, loc: list[str]) -> None:
    response = await api.request("POST", "/api/alice/tasks", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert loc in [e["loc"] for e in detail]
    assert all({"type", "loc", "msg"} <= set(e) for e in detail)
    assert (await api.request("GET", "/api/alice/tasks")).headers["x-total-count"] == "0"


async def test_title_limits_apply_after_trimming(api: Api) -> None:
    created = await api.create(title=f"  {'x' * 200}  ", description="d" * 1000)
    assert created["title"] == "x" * 200
    assert len(created["description"]) == 1000


async def test_malformed_json_is_422(api: Api) -> None:
    response = await api.request(
        "POST", "/api/alice/tasks", content=b'{"title": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b"\xff\xfe{}",
        b'{"title": NaN}',
        b'{"title": 1e999}',
        b'"just a string"',
        b"null",
    ],
)
async def test_hostile_bodies_are_422(api: Api, raw: bytes) -> None:
    response = await api.request("POST", "/api/alice/tasks", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422


async def test_missing_body_is_422(api: Api) -> None:
    response = await api.request("POST", "/api/alice/tasks")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": None}, "title"),
        ({"completed": None}, "completed"),
        ({"title": ""}, "title"),
        ({"description": "d" * 1001}, "description"),
        ({"done": True}, "done"),
    ],
)
async def test_invalid_patch_is_422_and_changes_nothing(api: Api, body: dict[str, Any], field: str) -> None:
    created = await api.create(title="stay")
    url = f"/api/alice/tasks/{created['id']}"
    response = await api.request("PATCH", url, json=body)
    assert response.status_code == 422
    assert field in str(response.json()["detail"])
    assert (await api.request("GET", url)).json() == created


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"description": "no title"}, "title"),
        ({"title": None}, "title"),
        ({"title": "x", "completed": None}, "completed"),
        ({"title": "x", "completed": "yes"}, "completed"),
        ({"title": "x", "done": True}, "done"),
    ],
)
async def test_invalid_put_is_422_and_changes_nothing(api: Api, body: dict[str, Any], field: str) -> None:
    created = await api.create(title="stay", completed=True)
    url = f"/api/alice/tasks/{created['id']}"
    response = await api.request("PUT", url, json=body)
    assert response.status_code == 422
    assert field in str(response.json()["detail"])
    assert (await api.request("GET", url)).json() == created


@pytest.mark.parametrize("task_id", ["abc", "0", "-1", "1.5", str(2**63)])
async def test_invalid_task_id_is_422(api: Api, task_id: str) -> None:
    response = await api.request("GET", f"/api/alice/tasks/{task_id}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "id"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"title": "nul\\u0000byte"}', "title"),
        (b'{"title": "lone \\ud800 surrogate"}', "title"),
        (b'{"title": "ok", "description": "nul\\u0000"}', "description"),
    ],
)
async def test_text_no_database_can_store_is_422(api: Api, raw: bytes, field: str) -> None:
    response = await api.request("POST", "/api/alice/tasks", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]


@pytest.mark.parametrize("query", ["?q=%00", f"?offset={2**63}"])
async def test_list_parameters_no_database_can_take_are_422(api: Api, query: str) -> None:
    response = await api.request("GET", f"/api/alice/tasks{query}")
    assert response.status_code == 422


async def test_unicode_text_round_trips(api: Api) -> None:
    created = await api.create(title="Ünïcödé ✓ 日本", description="emoji 🎉")
    fetched = await api.request("GET", f"/api/alice/tasks/{created['id']}")
    assert (fetched.json()["title"], fetched.json()["description"]) == ("Ünïcödé ✓ 日本", "emoji 🎉")
