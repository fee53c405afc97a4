"""Per-database engine set-up."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from task_service.db import Database
from task_service.settings import DatabaseSettings


async def test_sqlite_uses_wal_and_a_busy_timeout_and_creates_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "tasks.db"
    database = Database(DatabaseSettings(database_url=f"sqlite:///{path}", sqlite_busy_timeout_ms=1234))
    try:
        async with database.engine.connect() as connection:
            journal = (await connection.execute(text("PRAGMA journal_mode"))).scalar()
            timeout = (await connection.execute(text("PRAGMA busy_timeout"))).scalar()
        assert (journal, timeout) == ("wal", 1234)
        assert path.is_file()
        assert await database.is_reachable()
    finally:
        await database.dispose()
