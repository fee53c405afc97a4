"""The async engine and sessions, with the per-database settings each backend needs."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from task_service import sqlite_loop
from task_service.settings import DatabaseSettings

# An execution option of SQLite connections for a single statement (Database.statement): no BEGIN IMMEDIATE.
_NO_BEGIN = "taskgate_no_begin"


def _ensure_sqlite_directory(url: URL) -> None:
    """A fresh checkout has no ./data yet; the default database must still just work."""
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _use_wal(cursor: Any, timeout_ms: int) -> None:
    """Switch a database to WAL once; later connections only check.

    Setting the journal mode does not go through SQLite's busy handler: it fails at once with
    "database is locked" while another connection holds a lock, which happens when several processes
    open a brand-new file together. So: retry until the mode is WAL (whoever set it) or time runs out.
    This sleeps on the event loop (sqlite_loop.py), but only in that first-open race.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int, checkpoint_on_commit: bool) -> None:
    """WAL lets readers run beside the writer; busy_timeout makes writers wait instead of failing.

    Every transaction starts with BEGIN IMMEDIATE: with pysqlite's deferred BEGIN, a transaction
    that reads and then writes can fail with SQLITE_BUSY at the upgrade (the busy handler is not
    consulted there), which would turn concurrent updates into 500s. A connection for a single statement
    (Database.statement) begins nothing: the statement is a transaction of its own.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        _use_wal(cursor, busy_timeout_ms)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        if not checkpoint_on_commit:
            cursor.execute("PRAGMA wal_autocheckpoint=0")  # a sqlite_loop.Checkpointer does it, off the loop
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        if not connection.get_execution_options().get(_NO_BEGIN):
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(settings: DatabaseSettings, *, checkpoint_on_commit: bool = True) -> AsyncEngine:
    """`checkpoint_on_commit=False` leaves SQLite's WAL checkpoints to a sqlite_loop.Checkpointer."""
    url = settings.database
    if settings.is_sqlite:
        _ensure_sqlite_directory(url)
        # SQLite has one writer at a time; more connections would only wait for each other in its
        # busy handler (which sleeps up to 100 ms a round). One connection queues them without sleeping.
        # Its calls run on the event loop rather than in aiosqlite's thread: sqlite_loop.py says why.
        engine = create_async_engine(
            url.set(drivername=sqlite_loop.DRIVER),
            pool_size=1,
            max_overflow=0,
            pool_timeout=settings.db_pool_timeout_s,
        )
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms, checkpoint_on_commit)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_pre_ping=True,
    )


class Database:
    """The engine plus a session factory; one per process, owned by the app's lifespan."""

    def __init__(self, settings: DatabaseSettings) -> None:
        path = settings.database.database if settings.is_sqlite else None
        # A file database checkpoints in a thread of its own; an in-memory one has no WAL.
        in_thread = bool(path) and path != ":memory:" and not str(path).startswith("file:")
        self.engine = create_engine(settings, checkpoint_on_commit=not in_thread)
        self._checkpointer = sqlite_loop.Checkpointer(str(path)) if in_thread else None
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._single = self.engine.execution_options(
            **({_NO_BEGIN: True} if settings.is_sqlite else {"isolation_level": "AUTOCOMMIT"})
        )

    def session(self) -> AsyncSession:
        return self.sessions()

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one statement, in no explicit transaction. A single statement is atomic and sees
        one snapshot on both databases, so it needs no BEGIN: a SELECT takes no write lock on SQLite (no BEGIN
        IMMEDIATE), an INSERT takes it for itself, and PostgreSQL is spared the BEGIN and COMMIT round trips.
        Only for single statements: two through the same connection are two transactions."""
        async with self._single.connect() as connection:
            yield connection

    async def is_reachable(self) -> bool:
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    @property
    def checkpointing(self) -> bool:
        """Whether a thread checkpoints this (SQLite file) database's WAL."""
        return self._checkpointer is not None and self._checkpointer.running

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._checkpointer is not None:
            self._checkpointer.stop()
