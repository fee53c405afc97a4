"""The task service's floor: the least a FastAPI app on the same stack does for a list and a create.

Same uvicorn settings as the service and SQLAlchemy's default async engine with aiosqlite (bench/asgi.py: on
SQLite one connection in WAL mode, and pysqlite's own transaction handling, so a lone SELECT runs without a
BEGIN). List: one SQLAlchemy Core SELECT of the user's tasks in the service's default page order (newest first,
at most 50), returned as JSON. Create: one INSERT … RETURNING, the row returned. No authentication, no count,
no response headers, no logs, no metrics: a yardstick, not a product.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel
from sqlalchemy import Boolean, Column, DateTime, Index, Integer, MetaData, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.asgi import database_url, engine, main

PAGE = 50

metadata = MetaData()
tasks = Table(
    "tasks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("title", String(200), nullable=False),
    Column("description", String(1000)),
    Column("completed", Boolean, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_floor_user_created", "user_id", "created_at", "id"),
)


class NewTask(BaseModel):
    title: str
    description: str | None = None
    completed: bool = False


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.engine = engine(database_url())
    async with app.state.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield
    await app.state.engine.dispose()


app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/api/{user_id}/tasks", response_model=None)
async def list_tasks(user_id: str, request: Request) -> Any:
    engine: AsyncEngine = request.app.state.engine
    statement = (
        select(tasks)
        .where(tasks.c.user_id == user_id)
        .order_by(tasks.c.created_at.desc(), tasks.c.id.desc())
        .limit(PAGE)
    )
    async with engine.connect() as connection:
        rows = await connection.execute(statement)
        return [dict(row._mapping) for row in rows]


@app.post("/api/{user_id}/tasks", status_code=201, response_model=None)
async def create_task(user_id: str, body: NewTask, request: Request) -> Any:
    engine: AsyncEngine = request.app.state.engine
    now = datetime.now(UTC).replace(tzinfo=None)
    statement = insert(tasks).values(user_id=user_id, created_at=now, updated_at=now, **body.model_dump())
    async with engine.begin() as connection:
        row = (await connection.execute(statement.returning(*tasks.c))).one()
    return dict(row._mapping)


if __name__ == "__main__":
    main(app, __doc__)
