"""Per-database engine set-up."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from sqlalchemy import event, text

from task_service import sqlite_loop
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


async def test_processes_opening_a_new_sqlite_file_together_all_get_in(tmp_path: Path) -> None:
    """The first-open race: switching a new file to WAL fails at once while another holds a lock."""

    async def first_write(path: Path) -> str:
        database = Database(DatabaseSettings(database_url=f"sqlite:///{path}"))
        try:
            async with database.engine.begin() as connection:
                await connection.execute(text("CREATE TABLE IF NOT EXISTS opened (x)"))
                return str((await connection.execute(text("PRAGMA journal_mode"))).scalar())
        finally:
            await database.dispose()

    # Each round is a fresh file opened by four engines at once; before the fix about one round in ten
    # failed with "database is locked".
    for round_ in range(20):
        path = tmp_path / f"race-{round_}.db"
        assert await asyncio.gather(*(first_write(path) for _ in range(4))) == ["wal"] * 4


async def test_sqlite_runs_on_the_loop_and_checkpoints_in_a_thread(tmp_path: Path) -> None:
    """The service's SQLite calls are made on the event loop's own thread (no aiosqlite round trips), and its
    connection never checkpoints the WAL on commit, the one place SQLite would sync to disk; the checkpointer
    moves the WAL into the database file instead, and stops with the database."""
    path = tmp_path / "tasks.db"
    database = Database(DatabaseSettings(database_url=f"sqlite:///{path}"))
    threads: set[int] = set()
    event.listen(database.engine.sync_engine, "before_cursor_execute", lambda *_: threads.add(threading.get_ident()))
    try:
        async with database.engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (x)"))
        async with database.statement() as connection:
            await connection.execute(text("INSERT INTO t VALUES (1), (2)"))
        async with database.statement() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar() == 2
            assert (await connection.execute(text("PRAGMA wal_autocheckpoint"))).scalar() == 0
        assert threads == {threading.get_ident()}
        busy, frames, done = await asyncio.to_thread(sqlite_loop.checkpoint, str(path))
        assert (busy, done) == (0, frames) and frames > 0
        assert database.checkpointing
    finally:
        await database.dispose()
    assert not database.checkpointing
