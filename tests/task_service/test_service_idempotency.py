"""Idempotency-Key on POST: a retry returns the original task; reuse with another body is a 422."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from task_service.models import IdempotencyKey
from tests.task_service.signer import Api


async def _post(api: Api, body: dict[str, Any], key: str | None, user: str = "alice") -> Any:
    headers = {"Idempotency-Key": key} if key is not None else None
    return await api.request("POST", f"/api/{user}/tasks", user=user, json=body, headers=headers)


async def _count(api: Api, user: str = "alice") -> int:
    return int((await api.request("GET", f"/api/{user}/tasks", user=user)).headers["x-total-count"])


async def _age_keys(app: FastAPI, by: timedelta) -> None:
    """Pretend the keys were stored `by` earlier (portable: no SQL date arithmetic)."""
    async with app.state.db.session() as session, session.begin():
        for record in (await session.scalars(select(IdempotencyKey))).all():
            record.created_at -= by


async def test_retry_with_same_key_returns_the_original_task(api: Api) -> None:
    first = await _post(api, {"title": "pay rent", "description": "by friday"}, "key-1")
    retry = await _post(api, {"description": "by friday", "title": "  pay rent "}, "key-1")
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert retry.headers["location"] == first.headers["location"]
    assert retry.headers["etag"] == first.headers["etag"]
    assert "idempotent-replayed" not in first.headers
    assert retry.headers["idempotent-replayed"] == "true"
    assert await _count(api) == 1


async def test_retry_returns_the_task_as_it_is_now(api: Api) -> None:
    first = (await _post(api, {"title": "x"}, "k")).json()
    await api.request("PATCH", f"/api/alice/tasks/{first['id']}/complete")
    retry = await _post(api, {"title": "x"}, "k")
    assert retry.json()["id"] == first["id"]
    assert retry.json()["completed"] is True
    assert retry.headers["etag"] == '"2"'


async def test_same_key_with_a_different_body_is_422(api: Api) -> None:
    await _post(api, {"title": "one"}, "reused")
    response = await _post(api, {"title": "two"}, "reused")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert await _count(api) == 1


async def test_keys_belong_to_one_user(api: Api) -> None:
    alices = (await _post(api, {"title": "same"}, "shared-key", user="alice")).json()
    bobs = await _post(api, {"title": "same"}, "shared-key", user="bob")
    assert bobs.status_code == 201
    assert bobs.json()["id"] != alices["id"]
    assert bobs.json()["user_id"] == "bob"


async def test_without_a_key_every_post_creates(api: Api) -> None:
    await _post(api, {"title": "dup"}, None)
    await _post(api, {"title": "dup"}, None)
    assert await _count(api) == 2


async def test_retry_after_the_task_was_deleted_is_404_not_a_new_task(api: Api) -> None:
    first = (await _post(api, {"title": "gone"}, "k")).json()
    assert (await api.request("DELETE", f"/api/alice/tasks/{first['id']}")).status_code == 204
    retry = await _post(api, {"title": "gone"}, "k")
    assert retry.status_code == 404
    assert await _count(api) == 0


async def test_keys_expire_after_24_hours(api: Api, app: FastAPI) -> None:
    first = (await _post(api, {"title": "old"}, "k")).json()
    await _age_keys(app, timedelta(hours=24, seconds=1))
    again = await _post(api, {"title": "old"}, "k")
    assert again.status_code == 201
    assert again.json()["id"] != first["id"]
    assert "idempotent-replayed" not in again.headers
    assert await _count(api) == 2


async def test_keys_younger_than_24_hours_still_replay(api: Api, app: FastAPI) -> None:
    first = (await _post(api, {"title": "recent"}, "k")).json()
    await _age_keys(app, timedelta(hours=23, minutes=59))
    assert (await _post(api, {"title": "recent"}, "k")).json()["id"] == first["id"]


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\tkey", "ünï"])
async def test_malformed_key_is_422(api: Api, key: str) -> None:
    response = await api.request(
        "POST", "/api/alice/tasks", json={"title": "t"}, headers=[("Idempotency-Key", key.encode("utf-8"))]
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert await _count(api) == 0


async def test_key_sent_twice_is_422(api: Api) -> None:
    response = await api.request(
        "POST", "/api/alice/tasks", json={"title": "t"}, headers=[("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    )
    assert response.status_code == 422
