"""Alembic migrations on both databases: from empty, down and up again, and in step with the models."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from task_service.db import create_engine
from task_service.migrate import downgrade, migrate
from task_service.models import Base
from task_service.settings import DatabaseSettings
from tests.support.processes import REPO_ROOT, clean_env
from tests.task_service.postgres import PostgresServer

LIST_INDEXES = {"ix_tasks_user_created", "ix_tasks_user_updated", "ix_tasks_user_title", "ix_tasks_user_status_created"}


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseSettings:
    if request.param == "sqlite":
        return DatabaseSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    server: PostgresServer = request.getfixturevalue("postgres")
    return DatabaseSettings(database_url=await server.create_database(f"migrations_{uuid.uuid4().hex[:12]}"))


@pytest.fixture
async def engine(empty_database: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(empty_database)
    yield engine
    await engine.dispose()


def _schema(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    version = None
    if "alembic_version" in tables:
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    # By name from the catalogue: SQLAlchemy does not reflect expression indexes (lower(title)) on SQLite.
    catalogue = (
        "SELECT name FROM sqlite_master WHERE type = 'index'"
        if connection.dialect.name == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
    )
    indexes = set(connection.execute(text(catalogue)).scalars())
    return {"tables": tables - {"alembic_version", "sqlite_sequence"}, "version": version, "indexes": indexes}


async def _read_schema(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as connection:
        return await connection.run_sync(_schema)


async def test_upgrade_from_empty(empty_database: DatabaseSettings, engine: AsyncEngine) -> None:
    assert (await _read_schema(engine))["tables"] == set()
    await migrate(empty_database)
    schema = await _read_schema(engine)
    assert schema["tables"] == {"tasks", "idempotency_keys"}
    assert schema["version"] == "0002"
    assert schema["indexes"] >= LIST_INDEXES
    await migrate(empty_database)  # a second run at head changes nothing
    assert await _read_schema(engine) == schema


@pytest.mark.filterwarnings("ignore:.*expression-based index")  # SQLite cannot reflect lower(title)
async def test_models_match_the_migrations(empty_database: DatabaseSettings, engine: AsyncEngine) -> None:
    await migrate(empty_database)

    def differences(connection: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_downgrade_and_upgrade_round_trip(empty_database: DatabaseSettings, engine: AsyncEngine) -> None:
    await migrate(empty_database)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO tasks (user_id, title, completed, created_at, updated_at, version)"
                " VALUES ('alice', 'survives', false, '2026-01-01 00:00:00', '2026-01-01 00:00:00', 1)"
            )
        )
    await downgrade(empty_database, "0001")
    schema = await _read_schema(engine)
    assert (schema["tables"], schema["version"]) == ({"tasks"}, "0001")
    await migrate(empty_database)
    assert (await _read_schema(engine))["tables"] == {"tasks", "idempotency_keys"}
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT title FROM tasks"))).scalar() == "survives"

    await downgrade(empty_database, "base")
    schema = await _read_schema(engine)
    assert (schema["tables"], schema["version"]) == (set(), None)
    await migrate(empty_database)
    schema = await _read_schema(engine)
    assert (schema["tables"], schema["version"]) == ({"tasks", "idempotency_keys"}, "0002")
    assert schema["indexes"] >= LIST_INDEXES


@pytest.mark.slow
def test_migrate_command_needs_no_secret(tmp_path: Path) -> None:
    database = tmp_path / "cli.db"
    env = clean_env({"PYTHONPATH": str(REPO_ROOT), "TASKS_DATABASE_URL": f"sqlite:///{database}"})
    result = subprocess.run(
        [sys.executable, "-m", "task_service", "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "0002" in result.stdout
    assert database.is_file()


@pytest.mark.slow
def test_migrate_command_reports_an_unreachable_database_in_one_line() -> None:
    env = clean_env(
        {"PYTHONPATH": str(REPO_ROOT), "TASKS_DATABASE_URL": "postgresql://someone:hunter2@127.0.0.1:1/tasks"}
    )
    result = subprocess.run(
        [sys.executable, "-m", "task_service", "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "task_service: cannot reach the database (ConnectionRefusedError)"
    assert "hunter2" not in result.stdout + result.stderr


async def test_replicas_migrating_at_once_do_not_collide(empty_database: DatabaseSettings, engine: AsyncEngine) -> None:
    # Without the migration lock these collide on PostgreSQL and can block each other: fail, don't hang.
    async with asyncio.timeout(120):
        revisions = await asyncio.gather(*(migrate(empty_database) for _ in range(4)))
    assert revisions == ["0002"] * 4
    schema = await _read_schema(engine)
    assert (schema["tables"], schema["version"]) == ({"tasks", "idempotency_keys"}, "0002")
