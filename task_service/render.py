"""Task answers rendered to JSON in one pass, straight from the database rows.

`schemas.TaskOut` describes a task answer (OpenAPI, `response_model`). Building a pydantic model per task from
its row, for FastAPI to validate it again and then dump it, costs three passes over every task; the rows come
from the database's typed columns and need no validation, so the hot routes (list, create) write the same
JSON directly: the same keys in the same order, times as `…Z` with microseconds. tests/task_service hold this
output to TaskOut's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.responses import Response

from task_service.schemas import utc_z
from task_service.store import TaskRow


def task_fields(row: TaskRow) -> dict[str, Any]:
    """One task's answer, from a row whose first columns are store.COLUMNS."""
    task_id, user_id, title, description, completed, created_at, updated_at = row[:7]
    return {
        "id": task_id,
        "user_id": user_id,
        "title": title,
        "description": description,
        "completed": completed,
        "created_at": utc_z(created_at),
        "updated_at": utc_z(updated_at),
    }


def json_response(content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """What FastAPI's JSONResponse would send (UTF-8, compact), without a second encoding pass."""
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    return Response(body, status_code, headers, media_type="application/json")


def tasks(rows: Iterable[TaskRow], headers: Mapping[str, str]) -> Response:
    return json_response([task_fields(row) for row in rows], headers=headers)


def task(row: TaskRow, status_code: int, headers: Mapping[str, str]) -> Response:
    return json_response(task_fields(row), status_code, headers)
