"""The /api/{user_id}/tasks routes (docs/contract.md, "Routes")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from task_service import idempotency, openapi, pagination, render, store
from task_service.assertion import acting_user
from task_service.db import Database
from task_service.etags import etag, is_current, parse_if_match
from task_service.request_body import json_body
from task_service.schemas import ListQuery, TaskCreate, TaskOut, TaskPatch, TaskReplace

router = APIRouter(
    prefix="/api/{user_id}/tasks", responses=openapi.COMMON, generate_unique_id_function=openapi.operation_id
)

User = Annotated[str, Depends(acting_user)]
TaskId = Annotated[int, Path(alias="id", ge=1, le=2**63 - 1)]


async def db_session(request: Request, _user: User) -> AsyncIterator[AsyncSession]:
    """A session per request, opened only once the caller is authenticated."""
    async with request.app.state.db.session() as session:
        yield session


Session = Annotated[AsyncSession, Depends(db_session)]


async def _database(request: Request, _user: User) -> Database:
    """The database itself, for routes that need no session (plain `async def`, as every dependency here:
    FastAPI runs a plain `def` dependency in a worker thread, a thread round trip per request)."""
    database: Database = request.app.state.db
    return database


Db = Annotated[Database, Depends(_database)]


async def _if_match(request: Request) -> store.Precondition | None:
    return parse_if_match(request.headers.getlist("if-match"))


Precondition = Annotated[store.Precondition | None, Depends(_if_match)]
IF_MATCH = openapi.request_headers("If-Match")


def _task_response(task: store.TaskRow, response: Response) -> TaskOut:
    response.headers["ETag"] = etag(task.version)
    return TaskOut.model_validate(task)


def _invalid(loc: tuple[str, ...], message: str) -> RequestValidationError:
    """A 422 in FastAPI's own shape, for checks FastAPI cannot express itself."""
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": message, "input": None}])


IDEMPOTENCY_LOC = ("header", "Idempotency-Key")


async def _idempotency_key(request: Request, _user: User) -> str | None:
    values = request.headers.getlist("idempotency-key")
    if not values:
        return None
    if len(values) > 1 or not idempotency.KEY_PATTERN.fullmatch(values[0]):
        raise _invalid(IDEMPOTENCY_LOC, "must be sent once, as 1-255 visible ASCII characters")
    return values[0]


@router.get("", response_model=list[TaskOut], responses=openapi.LIST)
async def list_tasks(user: User, database: Db, query: Annotated[ListQuery, Query()]) -> Response:
    after = None
    if query.cursor is not None:
        if query.offset:
            raise _invalid(("query", "offset"), "cannot be combined with cursor")
        try:
            after = pagination.decode(query.cursor, query.sort)
        except pagination.InvalidCursor as exc:
            raise _invalid(("query", "cursor"), str(exc)) from None
    async with database.statement() as connection:
        page = await store.list_tasks(connection, user, query, after)
    headers = {"X-Total-Count": str(page.total)}
    if page.next is not None:
        headers["X-Next-Cursor"] = pagination.encode(page.next)
    return render.tasks(page.tasks, headers)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskOut,
    responses=openapi.CREATED,
    openapi_extra=openapi.body(TaskCreate) | openapi.request_headers("Idempotency-Key"),
)
async def create_task(
    user: User,
    database: Db,
    body: Annotated[TaskCreate, Depends(json_body(TaskCreate))],
    key: Annotated[str | None, Depends(_idempotency_key)],
) -> Response:
    values = body.model_dump()
    headers = {}
    if key is None:
        async with database.statement() as connection:
            task = await store.create_task(connection, user, values)
    else:
        try:
            async with database.session() as session:
                task, replayed = await idempotency.create_once(session, user, key, values)
        except idempotency.KeyReused:
            raise _invalid(IDEMPOTENCY_LOC, "this key was already used with a different request body") from None
        if replayed:
            headers["Idempotent-Replayed"] = "true"
    headers["Location"] = f"/api/{user}/tasks/{task.id}"
    headers["ETag"] = etag(task.version)
    return render.task(task, status.HTTP_201_CREATED, headers)


@router.get(
    "/{id}", response_model=TaskOut, responses=openapi.READ, openapi_extra=openapi.request_headers("If-None-Match")
)
async def get_task(
    user: User, session: Session, task_id: TaskId, request: Request, response: Response
) -> TaskOut | Response:
    async with session.begin():
        task = await store.get_task(session, user, task_id)
    if is_current(request.headers.getlist("if-none-match"), task.version):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag(task.version)})
    return _task_response(task, response)


@router.put(
    "/{id}", response_model=TaskOut, responses=openapi.WRITTEN, openapi_extra=openapi.body(TaskReplace) | IF_MATCH
)
async def replace_task(
    user: User,
    session: Session,
    task_id: TaskId,
    body: Annotated[TaskReplace, Depends(json_body(TaskReplace))],
    precondition: Precondition,
    response: Response,
) -> TaskOut:
    async with session.begin():
        task = await store.update_task(session, user, task_id, body.changes(), precondition)
    return _task_response(task, response)


@router.patch(
    "/{id}", response_model=TaskOut, responses=openapi.WRITTEN, openapi_extra=openapi.body(TaskPatch) | IF_MATCH
)
async def patch_task(
    user: User,
    session: Session,
    task_id: TaskId,
    body: Annotated[TaskPatch, Depends(json_body(TaskPatch))],
    precondition: Precondition,
    response: Response,
) -> TaskOut:
    async with session.begin():
        task = await store.update_task(session, user, task_id, body.changes(), precondition)
    return _task_response(task, response)


@router.delete(
    "/{id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=openapi.DELETED,
    openapi_extra=IF_MATCH,
)
async def delete_task(user: User, session: Session, task_id: TaskId, precondition: Precondition) -> Response:
    async with session.begin():
        await store.delete_task(session, user, task_id, precondition)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch("/{id}/complete", response_model=TaskOut, responses=openapi.WRITTEN, openapi_extra=IF_MATCH)
async def toggle_task(
    user: User, session: Session, task_id: TaskId, precondition: Precondition, response: Response
) -> TaskOut:
    async with session.begin():
        task = await store.toggle_task(session, user, task_id, precondition)
    return _task_response(task, response)
