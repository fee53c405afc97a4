"""SQLite on the event loop: SQLAlchemy's aiosqlite dialect, with each call made inline instead of in a thread.

Why: aiosqlite runs every call (cursor, execute, fetch, close, commit) in its own worker thread, and each is a
round trip: a queue put, a thread woken, a future resolved through `call_soon_threadsafe`. That costs about
30 µs of CPU per call on these machines, and a list or a create makes eight to fifteen of them: half of the
service's CPU per request (docs/performance.md), where SQLite's own work on the API's indexed statements is
1–60 µs. Made inline, a call holds the event loop for exactly SQLite's own time.

What that asks in return: the loop waits whenever SQLite waits. Within the process nothing waits on a lock:
the engine has one connection (db.py), and no transaction spans a real suspension, since every await inside
one is a statement that completes at once. A write that must wait for another *process's* write lock waits
in SQLite's busy handler, for at most TASKS_SQLITE_BUSY_TIMEOUT_MS, with the whole loop: run one service
process per SQLite file, and PostgreSQL for several (docs/task_service.md). And the loop must never wait for the
disk: see Checkpointer.

The adapters below give SQLAlchemy's aiosqlite adapter the awaitable API it expects (its `await_` needs
awaitables), backed by the standard library's sqlite3 and completing without suspending. The connection keeps
sqlite3's same-thread check: it is only ever used on the loop that opened it.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import util
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)

DRIVER = "sqlite+taskgate_loop"


class _Cursor:
    """aiosqlite's cursor API over a sqlite3 cursor."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> None:
        self._cursor.execute(sql, parameters)

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> None:
        self._cursor.executemany(sql, parameters)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def close(self) -> None:
        self._cursor.close()


class _Connection:
    """aiosqlite's connection API over a sqlite3 connection. `_connection` is what SQLAlchemy's adapter
    consults (as on aiosqlite's) to skip a commit or rollback on a closed connection."""

    __slots__ = ("_connection",)

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection: sqlite3.Connection | None = connection

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        return self._connection

    @property
    def isolation_level(self) -> str | None:
        return self._open().isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._open().isolation_level = cast(Any, value)  # "", None or a BEGIN kind, as sqlite3 takes it

    def cursor(self) -> _Cursor:
        return _Cursor(self._open().cursor())

    async def commit(self) -> None:
        self._open().commit()

    async def rollback(self) -> None:
        self._open().rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._open().create_function(*args, **kwargs)

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class _AdaptedConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()

    # aiosqlite's adapter sets the isolation level through aiosqlite's thread queue; there is no thread here.
    @property
    def isolation_level(self) -> str | None:
        return self._connection.isolation_level  # type: ignore[no-any-return]

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._connection.isolation_level = value


class _DBAPI(AsyncAdapt_aiosqlite_dbapi):
    def __init__(self) -> None:
        # The standard library's sqlite3 in both roles: its exceptions and constants are what aiosqlite re-exports.
        super().__init__(sqlite3, sqlite3)

    def connect(self, *args: Any, **kwargs: Any) -> _AdaptedConnection:
        # _Connection has every method of aiosqlite's Connection that SQLAlchemy's adapter calls.
        return _AdaptedConnection(self, cast(Any, _Connection(sqlite3.connect(*args, **kwargs))))


class SQLiteLoopDialect(SQLiteDialect_aiosqlite):
    driver = "taskgate_loop"
    supports_statement_cache = True
    has_terminate = False  # closing is immediate: there is no thread to stop

    @classmethod
    def import_dbapi(cls) -> _DBAPI:
        return _DBAPI()

    def retrieve_dbapi_version(self, dbapi: Any) -> util.VersionInfo:
        return util.VersionInfo(sys.version_info[:3])  # sqlite3 ships with CPython, as the pysqlite dialect says


registry.register("sqlite.taskgate_loop", __name__, "SQLiteLoopDialect")


def checkpoint(path: str) -> tuple[int, int, int]:
    """One PASSIVE checkpoint of the database at `path`, on a connection of its own: (busy, WAL frames,
    frames checkpointed). PASSIVE never waits for, nor blocks, the service's reader or writer."""
    connection = sqlite3.connect(path)
    try:
        busy, frames, done = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(busy), int(frames), int(done)
    finally:
        connection.close()


class Checkpointer:
    """WAL checkpoints in a thread of their own, off the event loop.

    In WAL mode with synchronous=NORMAL a commit appends to the WAL and syncs nothing; the syncs are in the
    checkpoints, which SQLite otherwise runs inside the commit that crosses `wal_autocheckpoint` (1000 pages,
    every two hundred or so creates): 5 to 40 ms of fsync each on these machines, 80 % of a create's time
    on average, and with SQLite on the loop the whole service would wait for the disk. So the service's
    connection never checkpoints (db.py sets wal_autocheckpoint=0) and this thread does, every `interval_s`.
    """

    def __init__(self, path: str, interval_s: float = 1.0) -> None:
        self._path = path
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            try:
                checkpoint(self._path)
            except sqlite3.Error:
                continue  # busy or briefly unavailable: the next round catches up

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
