"""The task queries. Every statement filters on the acting user, so no path leads to another's task.

Writes are single atomic UPDATE/DELETE statements (no read-modify-write), so concurrent requests
cannot lose each other's changes, and an If-Match precondition is checked in the same statement.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Delete, Select, Update, delete, func, literal, not_, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from task_service.models import Task, utcnow
from task_service.pagination import Position
from task_service.schemas import ListQuery


class TaskNotFound(Exception):
    """No such task for this user (another user's task looks exactly the same)."""


class PreconditionFailed(Exception):
    """The task exists but its version is not one the client named in If-Match."""


@dataclass(frozen=True)
class Precondition:
    """An If-Match header: the versions the client will accept; `None` means any ('*')."""

    versions: Collection[int] | None


_SORT_KEYS: dict[str, ColumnElement[Any]] = {
    "created": Task.created_at.expression,
    "updated": Task.updated_at.expression,
    "title": func.lower(Task.title),
}


def escape_like(text: str) -> str:
    """Make a user's search text match literally: % and _ are LIKE wildcards."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(user_id: str, query: ListQuery) -> Select[Task]:
    statement = select(Task).where(Task.user_id == user_id)
    if query.status != "all":
        statement = statement.where(Task.completed == (query.status == "completed"))
    if query.q:
        pattern = f"%{escape_like(query.q)}%"
        statement = statement.where(
            or_(Task.title.ilike(pattern, escape="\\"), Task.description.ilike(pattern, escape="\\"))
        )
    return statement


@dataclass(frozen=True)
class Page:
    tasks: list[Task]
    total: int  # all tasks matching the filters, not just this page
    next: Position | None  # where the next page starts, when there is one


def _after(key: ColumnElement[Any], descending: bool, position: Position) -> ColumnElement[bool]:
    """Rows strictly beyond `position` in the page order; (key, id) is unique, so none is skipped."""
    mine = tuple_(key, Task.id)
    theirs = tuple_(literal(position.key, key.type), literal(position.id, Task.id.type))
    return mine < theirs if descending else mine > theirs


async def list_tasks(session: AsyncSession, user_id: str, query: ListQuery, after: Position | None) -> Page:
    """One page of the user's tasks, by offset or after a keyset position."""
    filtered = _filtered(user_id, query)
    total = await session.scalar(select(func.count()).select_from(filtered.subquery()))
    key = _SORT_KEYS[query.sort.lstrip("-")]
    descending = query.sort.startswith("-")
    order = (key.desc(), Task.id.desc()) if descending else (key.asc(), Task.id.asc())
    page = filtered.add_columns(key).order_by(*order)
    if after is not None:
        page = page.where(_after(key, descending, after))
    # One row more than asked says whether there is a next page.
    rows = (await session.execute(page.limit(query.limit + 1).offset(query.offset))).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    last = Position(query.sort, rows[-1][1], rows[-1][0].id) if more else None
    return Page([row[0] for row in rows], int(total or 0), last)


async def get_task(session: AsyncSession, user_id: str, task_id: int) -> Task:
    task = await session.scalar(select(Task).where(Task.id == task_id, Task.user_id == user_id))
    if task is None:
        raise TaskNotFound
    return task


async def create_task(session: AsyncSession, user_id: str, values: dict[str, Any]) -> Task:
    now = utcnow()
    task = Task(user_id=user_id, created_at=now, updated_at=now, version=1, **values)
    session.add(task)
    await session.flush()
    return task


_Write = TypeVar("_Write", Update, Delete)


def _guarded(statement: _Write, user_id: str, task_id: int, precondition: Precondition | None) -> _Write:
    statement = statement.where(Task.id == task_id, Task.user_id == user_id)
    if precondition is not None and precondition.versions is not None:
        statement = statement.where(Task.version.in_(list(precondition.versions)))
    return statement


async def _missing_or_stale(session: AsyncSession, user_id: str, task_id: int) -> Exception:
    """After a guarded write matched nothing: was there no task, or only a stale version?"""
    exists = await session.scalar(select(Task.id).where(Task.id == task_id, Task.user_id == user_id))
    return TaskNotFound() if exists is None else PreconditionFailed()


async def update_task(
    session: AsyncSession,
    user_id: str,
    task_id: int,
    values: dict[str, Any],
    precondition: Precondition | None,
) -> Task:
    """Apply `values` (column -> value or SQL expression) and bump the version, atomically."""
    statement = _guarded(
        update(Task).values(**values, version=Task.version + 1, updated_at=utcnow()),
        user_id,
        task_id,
        precondition,
    ).returning(Task)
    task = await session.scalar(statement.execution_options(synchronize_session=False))
    if task is None:
        raise await _missing_or_stale(session, user_id, task_id)
    return task


async def toggle_task(session: AsyncSession, user_id: str, task_id: int, precondition: Precondition | None) -> Task:
    return await update_task(session, user_id, task_id, {"completed": not_(Task.completed)}, precondition)


async def delete_task(session: AsyncSession, user_id: str, task_id: int, precondition: Precondition | None) -> None:
    statement = _guarded(delete(Task), user_id, task_id, precondition).returning(Task.id)
    if await session.scalar(statement) is None:
        raise await _missing_or_stale(session, user_id, task_id)
