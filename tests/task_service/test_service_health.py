"""Liveness and readiness."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from task_service import store
from task_service.db import Database
from task_service.settings import DatabaseSettings
from tests.task_service.signer import Api


async def test_healthz(api: Api) -> None:
    response = await api.request("GET", "/healthz", user=None)
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_when_database_reachable(api: Api) -> None:
    response = await api.request("GET", "/readyz", user=None)
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


@pytest.fixture
async def database_down(app: FastAPI) -> AsyncIterator[None]:
    working = app.state.db
    # Port 1 on loopback: nothing listens there, so the connection is refused.
    unreachable = Database(
        DatabaseSettings(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none", db_pool_timeout_s=2)
    )
    app.state.db = unreachable
    yield
    app.state.db = working
    await unreachable.dispose()


async def test_readyz_is_503_when_database_unreachable(api: Api, database_down: None) -> None:
    response = await api.request("GET", "/readyz", user=None)
    assert response.status_code == 503
    assert response.json() == {"detail": "database unreachable"}


async def test_api_is_503_not_500_when_database_unreachable(api: Api, database_down: None) -> None:
    for method, body in [("GET", None), ("POST", {"title": "t"})]:
        response = await api.request(method, "/api/alice/tasks", json=body)
        assert response.status_code == 503
        assert response.json() == {"detail": "database unavailable"}


async def test_a_bug_still_answers_in_the_one_error_shape(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_args: object) -> None:
        raise RuntimeError("a bug with secret internals")

    monkeypatch.setattr(store, "get_task", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://task-service.test") as client:
        response = await Api(client).request("GET", "/api/alice/tasks/1")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    assert "secret internals" not in response.text
