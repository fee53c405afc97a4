"""Fixtures for the task service: a real app on a real database, driven through httpx's ASGI transport."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from task_service.app import create_app
from task_service.migrate import migrate
from task_service.settings import DatabaseSettings, Settings
from tests.task_service.postgres import PostgresServer, empty_tables, in_thread
from tests.task_service.signer import INTERNAL_SECRET, ROTATED_SECRET, Api


@pytest.fixture(scope="session")
def postgres_tasks_url(postgres: PostgresServer) -> str:
    """One migrated database for the whole session; each test starts from empty tables."""
    url = in_thread(postgres.create_database("tasks"))
    in_thread(migrate(DatabaseSettings(database_url=url)))
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies, instead of migrating its own from scratch."""
    path = tmp_path_factory.mktemp("sqlite-template") / "tasks.db"
    in_thread(migrate(DatabaseSettings(database_url=f"sqlite+aiosqlite:///{path}")))
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test that touches the database runs on both: SQLite (embedded) and PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "tasks.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_tasks_url")
    in_thread(empty_tables(url))
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The database is migrated already (template file / session database); migrating at start is covered
    # by test_service_process.py and test_service_migrations.py.
    return Settings(
        database_url=database_url,
        internal_secret=f"{INTERNAL_SECRET},{ROTATED_SECRET}",
        migrate_on_start=False,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://task-service.test") as client:
        yield Api(client)
