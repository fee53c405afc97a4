"""Builds the FastAPI application: routes, error shapes and the database's lifetime."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.requests import ClientDisconnect

from task_service import idempotency, store
from task_service.api import router
from task_service.assertion import trust_gateway
from task_service.db import Database
from task_service.health import router as health_router
from task_service.migrate import migrate
from task_service.observability import ObservabilityMiddleware, ServiceMetrics
from task_service.settings import Settings

logger = logging.getLogger("task_service")


class _EscapedJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: a 422 echoes the client's input, which may be text (a lone surrogate)
    that cannot be encoded as UTF-8 and would otherwise turn the 422 into a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


async def _invalid_input(_request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return _EscapedJSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _body_cut_off(_request: Request, _exc: Exception) -> JSONResponse:
    """The request body ended before it was complete: uvicorn's parser refused the rest (a malformed chunk,
    already answered 400 on the wire) or the client went away. The client's error, never a 500; the answer
    is logged, and sent only if the connection is still there."""
    return JSONResponse({"detail": "request body incomplete"}, status_code=status.HTTP_400_BAD_REQUEST)


async def _not_found(_request: Request, _exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "task not found"}, status_code=status.HTTP_404_NOT_FOUND)


async def _precondition_failed(_request: Request, _exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": "the task has changed since the version given in If-Match"},
        status_code=status.HTTP_412_PRECONDITION_FAILED,
    )


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """An outage is not a bug: say so with a 503 (retry later), never a stack trace."""
    logger.warning("database unavailable: %s", type(exc).__name__)
    return JSONResponse({"detail": "database unavailable"}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)


# SQLSTATEs that mean "the database cannot serve us now", not "this statement is wrong": connection
# exceptions (08), insufficient resources (53), operator intervention such as an admin shutdown or a
# terminated backend (57P), and 55000, which PostgreSQL raises when a database refuses new connections.
_OUTAGE_SQLSTATES = ("08", "53", "57P", "55000")


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A driver error from a database that went away (restart, failover, terminated backend, connections
    disallowed) is an outage, answered 503; any other driver error is a bug and stays a 500."""
    sqlstate = str(getattr(getattr(exc, "orig", None), "sqlstate", "") or "")
    if isinstance(exc, DBAPIError) and (exc.connection_invalidated or sqlstate.startswith(_OUTAGE_SQLSTATES)):
        return await _database_unavailable(request, exc)
    logger.error("database error: %s (SQLSTATE %s)", type(exc).__name__, sqlstate or "none")
    return await _internal_error(request, exc)


async def _internal_error(_request: Request, _exc: Exception) -> JSONResponse:
    """Keep the one error shape even for bugs; the traceback goes to the log only."""
    return JSONResponse({"detail": "internal error"}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await migrate(settings)
        database = Database(settings)
        # Keys are also purged per user on every keyed create; this catches users who stopped posting.
        async with database.session() as session, session.begin():
            await idempotency.purge_expired(session)
        app.state.db = database
        try:
            yield
        finally:
            await database.dispose()

    app = FastAPI(
        title="taskgate task service",
        lifespan=lifespan,
        redirect_slashes=False,  # a redirect would leave the path the gateway checked
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.gateway = trust_gateway(settings.internal_secret_keys)
    metrics = ServiceMetrics()
    app.add_route("/metrics", metrics.endpoint, methods=["GET"], include_in_schema=False)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    app.include_router(health_router)
    app.include_router(router)
    app.add_exception_handler(RequestValidationError, _invalid_input)
    app.add_exception_handler(ClientDisconnect, _body_cut_off)
    app.add_exception_handler(store.TaskNotFound, _not_found)
    app.add_exception_handler(store.PreconditionFailed, _precondition_failed)
    # asyncpg reports a refused connection as a plain OSError; the database is this service's only peer.
    for outage in (OperationalError, InterfaceError, PoolTimeout, OSError):
        app.add_exception_handler(outage, _database_unavailable)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _internal_error)
    return app
