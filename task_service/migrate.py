"""Brings the database schema to the newest Alembic revision (or back, for tests and rollbacks)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text

from task_service.db import create_engine
from task_service.settings import DatabaseSettings

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same for every replica migrating the same database.
_PG_MIGRATION_LOCK = 0x7461736B


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _serialise(connection: Connection) -> None:
    """Replicas starting together must not migrate the same PostgreSQL database at once.

    The lock is held until the transaction (which wraps the whole migration) ends; SQLite needs
    nothing, its BEGIN IMMEDIATE already excludes other writers.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})


def _upgrade(connection: Connection, revision: str) -> str | None:
    _serialise(connection)
    command.upgrade(_config(connection), revision)
    return MigrationContext.configure(connection).get_current_revision()


def _downgrade(connection: Connection, revision: str) -> None:
    _serialise(connection)
    command.downgrade(_config(connection), revision)


async def migrate(settings: DatabaseSettings, revision: str = "head") -> str | None:
    """Upgrade to `revision`; returns the revision the database is at afterwards."""
    engine = create_engine(settings)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(_upgrade, revision)
    finally:
        await engine.dispose()


async def downgrade(settings: DatabaseSettings, revision: str) -> None:
    engine = create_engine(settings)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_downgrade, revision)
    finally:
        await engine.dispose()
