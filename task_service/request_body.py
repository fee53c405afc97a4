"""Reads a JSON body into a model only after the caller has been authenticated.

FastAPI parses declared body parameters before it runs any dependency, so a request with a bad
assertion and a malformed body would get a 422 instead of a 401. Routes therefore take their body
through `json_body(Model)`, a dependency that depends on `acting_user` and so runs after it; its
errors keep FastAPI's 422 shape.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from task_service.assertion import acting_user

_M = TypeVar("_M", bound=BaseModel)


def _body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]


def _not_json(constant: str) -> float:
    """NaN and Infinity are not JSON (RFC 8259), and a 422 echoing them could not be rendered."""
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def json_body(model: type[_M]) -> Callable[..., Awaitable[_M]]:
    async def parse(request: Request, _user: Annotated[str, Depends(acting_user)]) -> _M:
        raw = await request.body()
        if not raw:
            raise RequestValidationError(
                [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
            )
        try:
            data = json.loads(raw, parse_constant=_not_json, parse_float=_finite)
        except (ValueError, RecursionError) as exc:
            # ValueError covers bad JSON and bad UTF-8; RecursionError, nesting deeper than the parser's
            # stack, which is no valid task either.
            position = exc.pos if isinstance(exc, json.JSONDecodeError) else 0
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body", position), "msg": "JSON decode error", "input": {}}]
            ) from None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationError(_body_errors(exc)) from None

    return parse
