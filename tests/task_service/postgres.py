"""A throw-away PostgreSQL server for tests, from the distribution's own initdb and pg_ctl.

Loaded as a pytest plugin (tests/conftest.py), so the task-service suite and the end-to-end tests share
one server per session through the `postgres` fixture.

PostgreSQL refuses to run as root, so when the tests run as root the server is run as the
`postgres` system user (or `nobody`), owning a data directory made for it. It listens only on a free
loopback port, trusts local connections (nothing else can reach it) and runs without fsync: the data
lives as long as the test session.
"""

from __future__ import annotations

import asyncio
import ctypes
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.support.processes import POLL_INTERVAL_S, free_port

SUPERUSER = "taskgate"
T = TypeVar("T")


def in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from synchronous (session) set-up without touching pytest's event loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here; `.ci/run` installs them (apt-get install postgresql)."""


def _bin_dir() -> Path:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3].split(".")[0])
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise PostgresUnavailable("initdb not found; install the postgresql package")


def _unprivileged_user() -> pwd.struct_passwd | None:
    """None when we are not root (then the server runs as us)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresUnavailable("running as root and neither a postgres nor a nobody user exists")


@dataclass(frozen=True)
class PostgresServer:
    port: int

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    async def connect(self, database: str = "postgres") -> Any:
        return await asyncpg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, database=database)

    async def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        connection = await self.connect()
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        return self.url(name)


async def empty_tables(url: str) -> None:
    """Back to an empty, migrated schema with ids starting at 1 again (much faster than a new database)."""
    parts = make_url(url)
    connection = await asyncpg.connect(host=parts.host, port=parts.port, user=parts.username, database=parts.database)
    try:
        await connection.execute("TRUNCATE tasks, idempotency_keys RESTART IDENTITY")
    finally:
        await connection.close()


def _die_with_parent() -> None:
    """Runs in the server's process before exec: if the test process dies, even by SIGKILL, the
    kernel sends the server SIGQUIT (immediate shutdown), so an interrupted run leaves no server behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGQUIT) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


_PR_SET_PDEATHSIG = 1


async def _accepts_connections(port: int) -> bool:
    try:
        connection = await asyncpg.connect(host="127.0.0.1", port=port, user=SUPERUSER, database="postgres", timeout=2)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await connection.close()
    return True


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    bin_dir = _bin_dir()
    user = _unprivileged_user()
    as_user: dict[str, Any] = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    base = Path(tempfile.mkdtemp(prefix="taskgate-pg-"))
    if user is not None:
        os.chown(base, user.pw_uid, user.pw_gid)
    data, log_path = base / "data", base / "server.log"
    port = free_port()

    def log_tail() -> str:
        return log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""

    try:
        initdb = subprocess.run(
            [
                str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust",
                "--no-locale", "--encoding=UTF8", "--no-sync",
            ],
            capture_output=True, text=True, timeout=120, **as_user,
        )  # fmt: skip
        if initdb.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {initdb.stderr[-2000:]}")
        # The server runs as our child (not daemonised by pg_ctl) so that it can die with us.
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [
                    str(bin_dir / "postgres"), "-D", str(data), "-c", "listen_addresses=127.0.0.1", "-p", str(port),
                    "-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "synchronous_commit=off",
                    "-c", "full_page_writes=off", "-c", "max_connections=200",
                ],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent, **as_user,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not in_thread(_accepts_connections(port)):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise PostgresUnavailable(f"the server did not come up:\n{log_tail()}")
                time.sleep(POLL_INTERVAL_S)
            yield PostgresServer(port)
        finally:
            server.send_signal(signal.SIGINT)  # fast shutdown: disconnect clients, stop
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=30)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server
