"""What the bench's own ASGI apps (the floor and the SQLModel reference) run on: uvicorn exactly as
`python -m task_service` runs the task service (task_service/__main__.py), and SQLAlchemy's default async
engine, so that what differs between them and the service is the application code."""

from __future__ import annotations

import argparse
import os
from typing import Any

import uvicorn
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def database_url() -> str:
    """The bench hands each app its own database (SQLite file or PostgreSQL database)."""
    return os.environ["BENCH_DATABASE_URL"]


def engine(url: str) -> AsyncEngine:
    """`create_async_engine(url)` as tutorials write it, except on SQLite: one connection in WAL mode (as the
    service has), because the default five connections writing one file would spend the create load in SQLite's
    busy handler, sleeping or failing with "database is locked" rather than measuring the app."""
    if not url.startswith("sqlite"):
        return create_async_engine(url)
    sqlite = create_async_engine(url, pool_size=1, max_overflow=0)

    @event.listens_for(sqlite.sync_engine, "connect")
    def _wal(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return sqlite


def serve(app: Any, port: int) -> None:
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        http="httptools",
        loop="uvloop",
        proxy_headers=False,
        server_header=False,
        date_header=True,
        access_log=False,
        log_level="warning",
    )


def main(app: Any, description: str | None) -> None:
    """`python -m bench.service_floor --port N` (or service_plain)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    serve(app, parser.parse_args().port)
