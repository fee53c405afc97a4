"""Liveness and readiness."""

from __future__ import annotations

from fastapi import FastAPI

from task_service.db import Database
from task_service.settings import DatabaseSettings
from tests.task_service.signer import Api


async def test_healthz(api: Api) -> None:
    response = await api.request("GET", "/healthz", user=None)
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_when_database_reachable(api: Api) -> None:
    response = await api.request("GET", "/readyz", user=None)
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


async def test_readyz_is_503_when_database_unreachable(api: Api, app: FastAPI) -> None:
    working = app.state.db
    # Port 1 on loopback: nothing listens there, so the connection is refused.
    unreachable = Database(
        DatabaseSettings(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none", db_pool_timeout_s=2)
    )
    app.state.db = unreachable
    try:
        response = await api.request("GET", "/readyz", user=None)
    finally:
        app.state.db = working
        await unreachable.dispose()
    assert response.status_code == 503
    assert response.json() == {"detail": "database unreachable"}
