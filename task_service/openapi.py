"""The task service's OpenAPI description: what FastAPI cannot see on its own.

Bodies are read by `request_body.json_body` (after the assertion is checked), request headers by dependencies
that read `request.headers`, and errors are raised as exceptions, so FastAPI's generated schema knows none of
them. The route decorators in api.py take their `responses=` and `openapi_extra=` from here, and `describe`
adds the shared parts. The service serves no schema itself (`openapi_url=None`); `taskgate openapi` turns this
description into the document the gateway publishes at `GET /openapi.json`.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict

from task_service.idempotency import KEY_PATTERN
from task_service.schemas import TaskCreate, TaskPatch, TaskReplace
from taskgate_assertion.format import ASSERTION_HEADER, USER_ID

Document = dict[str, Any]
Responses = dict[int | str, dict[str, Any]]

BODIES: tuple[type[BaseModel], ...] = (TaskCreate, TaskReplace, TaskPatch)
SECURITY_SCHEME = "gatewayAssertion"


class Error(BaseModel):
    """Every error but a 422: a fixed phrase, never an echo of the request."""

    detail: str


class ValidationIssue(BaseModel):
    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrors(BaseModel):
    """A 422: one entry per problem with the input, in FastAPI's shape."""

    detail: list[ValidationIssue]


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


HEADERS: Document = {
    "ETag": {
        "description": "The task's version as a strong entity tag; send it in `If-Match` to change only that version.",
        "required": True,
        "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
    },
    "Location": {
        "description": "The task's path, `/api/{user_id}/tasks/{id}`.",
        "required": True,
        "schema": {"type": "string"},
    },
    "X-Total-Count": {
        "description": "How many tasks match the filters, on every page together.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
    "X-Next-Cursor": {
        "description": "Present when more tasks follow: the same request plus `cursor=` this value reads them.",
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this answers a repeat of an earlier request with the same `Idempotency-Key`.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}

PARAMETERS: Document = {
    "user_id": {
        "name": "user_id",
        "in": "path",
        "required": True,
        "description": "The acting user: it must be the caller's own id.",
        "schema": {"type": "string", "pattern": f"^{USER_ID.pattern}$"},
    },
    "If-Match": {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": "Write only if the task's `ETag` is one of these (or `*`); otherwise 412 and nothing changes.",
        "schema": {"type": "string"},
    },
    "If-None-Match": {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": "When it names the task's current `ETag` (or is `*`), the answer is 304 without a body.",
        "schema": {"type": "string"},
    },
    "Idempotency-Key": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Create at most once per key (24 h): a repeat answers the same task with "
        "`Idempotent-Replayed: true`; the same key with another body is 422.",
        "schema": {"type": "string", "pattern": f"^{KEY_PATTERN.pattern}$"},
    },
}


def _headers(*names: str) -> dict[str, Any]:
    return {name: _ref("headers", name) for name in names}


def _task(description: str, *headers: str) -> dict[str, Any]:
    return {"description": description, "headers": _headers("ETag", *headers)}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "model": Error}


# Every /api route (APIRouter(responses=…)): the assertion, the path's user, the input, the database.
COMMON: Responses = {
    401: _error("Missing or invalid gateway assertion."),
    403: _error("The path's `user_id` is not the acting user."),
    422: {"description": "Invalid input: body, query, path or header.", "model": ValidationErrors},
    503: _error("The database is unavailable; retry later."),
}
NOT_FOUND: Responses = {404: _error("No such task for this user (another user's task looks the same).")}
STALE: Responses = {412: _error("`If-Match` does not name the task's current version; nothing changed.")}

LIST: Responses = {
    200: {"description": "One page of the user's tasks.", "headers": _headers("X-Total-Count", "X-Next-Cursor")}
}
CREATED: Responses = {
    201: _task(
        "The task created (or, for a repeated `Idempotency-Key`, created before).", "Location", "Idempotent-Replayed"
    ),
    404: _error("The task an earlier request with this `Idempotency-Key` created has since been deleted."),
}
READ: Responses = {
    200: _task("The task."),
    304: {
        "description": "`If-None-Match` names the current version: the copy the client has is current.",
        "headers": _headers("ETag"),
    },
    **NOT_FOUND,
}
WRITTEN: Responses = {200: _task("The task as changed."), **NOT_FOUND, **STALE}
DELETED: Responses = {204: {"description": "Deleted."}, **NOT_FOUND, **STALE}


def body(model: type[BaseModel]) -> Document:
    """`openapi_extra` for a route whose JSON body `json_body(model)` reads."""
    content = {"application/json": {"schema": _ref("schemas", model.__name__)}}
    return {"requestBody": {"required": True, "content": content}}


def request_headers(*names: str) -> Document:
    """`openapi_extra` for the request headers a route honours."""
    return {"parameters": [_ref("parameters", name) for name in names]}


def operation_id(route: APIRoute) -> str:
    """The handler's name (`list_tasks`, `create_task`, …): what generated clients call their functions."""
    return route.name


def describe(app: FastAPI) -> Document:
    """The service's whole OpenAPI document: FastAPI's, plus the shared components and the `{user_id}`
    parameter (read by the assertion check, not by a handler, so FastAPI cannot see it)."""
    document = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in BODIES:
        schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components["headers"] = HEADERS
    components["parameters"] = PARAMETERS
    components["securitySchemes"] = {SECURITY_SCHEME: {"type": "apiKey", "in": "header", "name": ASSERTION_HEADER}}
    for path, item in document["paths"].items():
        if "{user_id}" in path:
            for operation in item.values():
                operation["security"] = [{SECURITY_SCHEME: []}]
            item["parameters"] = [_ref("parameters", "user_id")]
    # A copy, so a caller may change it: FastAPI and this function put shared module-level objects into it.
    return copy.deepcopy(document)
