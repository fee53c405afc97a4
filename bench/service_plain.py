"""A plain FastAPI + SQLModel backend for the same spec: the reference the task service must beat per request.

Written the way the SQLModel and FastAPI tutorials teach: a table model plus create/read models, a session
per request from a dependency, the caller's own HS256 check with pyjwt (`HTTPBearer`, `jwt.decode`, the
path's user against `sub`), `select(...).where(...)` and `session.exec`, `add`/`commit`/`refresh`. No paging,
no count, no ETags, no logs. Served like the service (bench/asgi.py) on the same engine (one connection in WAL
mode on SQLite), so the comparison is between the application code alone.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.asgi import database_url, engine, main

SECRET = os.environ.get("BENCH_JWT_SECRET", "")


def utcnow() -> datetime:
    return datetime.now(UTC)


class TaskBase(SQLModel):
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    completed: bool = False


class Task(TaskBase, table=True):
    __tablename__ = "tasks"

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(index=True, max_length=128)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class TaskCreate(TaskBase):
    pass


class TaskRead(TaskBase):
    id: int
    user_id: str
    created_at: datetime
    updated_at: datetime


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.engine = engine(database_url())
    async with app.state.engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all)
    yield
    await app.state.engine.dispose()


app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
bearer = HTTPBearer()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(request.app.state.engine) as session:
        yield session


def current_user(user_id: str, credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)]) -> str:
    try:
        claims = jwt.decode(credentials.credentials, SECRET, algorithms=["HS256"], options={"require": ["exp"]})
    except jwt.InvalidTokenError:
        raise HTTPException(status_code=401, detail="Invalid token") from None
    if claims.get("sub") != user_id:
        raise HTTPException(status_code=403, detail="Forbidden")
    return user_id


User = Annotated[str, Depends(current_user)]
Session = Annotated[AsyncSession, Depends(get_session)]


@app.get("/api/{user_id}/tasks", response_model=list[TaskRead])
async def list_tasks(user: User, session: Session) -> list[Task]:
    result = await session.exec(select(Task).where(Task.user_id == user))
    return list(result.all())


@app.post("/api/{user_id}/tasks", response_model=TaskRead, status_code=201)
async def create_task(task: TaskCreate, user: User, session: Session) -> Task:
    db_task = Task.model_validate(task, update={"user_id": user})
    session.add(db_task)
    await session.commit()
    await session.refresh(db_task)
    return db_task


if __name__ == "__main__":
    main(app, __doc__)
