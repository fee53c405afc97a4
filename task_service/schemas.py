"""The JSON the API accepts and returns; validation here is what turns bad input into a 422."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    field_serializer,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from task_service.models import DESCRIPTION_MAX, TITLE_MAX, storable_text
from task_service.pagination import MAX_CURSOR_CHARS

INT64_MAX = 2**63 - 1


Storable = AfterValidator(storable_text)
Title = Annotated[
    str, StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=TITLE_MAX), Storable
]
Description = Annotated[str, StringConstraints(strict=True, max_length=DESCRIPTION_MAX), Storable]


class _Input(BaseModel):
    # Unknown fields are a client bug (a typo like "complete" would otherwise be silently ignored).
    model_config = ConfigDict(extra="forbid")


class TaskCreate(_Input):
    """POST: a new task; description defaults to null and completed to false."""

    title: Title
    description: Description | None = None
    completed: StrictBool = False


def _no_default(schema: dict[str, Any]) -> None:
    """Left out means "unchanged" or "no filter", not null: the published schema must not advertise a default."""
    schema.pop("default", None)


def _optional(description: str) -> Any:
    return Field(None, description=description, json_schema_extra=_no_default)


class TaskPatch(_Input):
    """PATCH: only the fields given change; description may be cleared with null, the others not."""

    # Docstrings and field descriptions are published in the OpenAPI document. `SkipJsonSchema[None]`: null is
    # refused below, so the schema does not offer it.
    title: Title | SkipJsonSchema[None] = _optional("Left out: unchanged.")
    description: Description | None = _optional("Left out: unchanged; null clears it.")
    completed: StrictBool | SkipJsonSchema[None] = _optional("Left out: unchanged.")

    @model_validator(mode="after")
    def _no_null_for_required(self) -> Self:
        for name in ("title", "completed"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self

    def changes(self) -> dict[str, object]:
        return self.model_dump(include=self.model_fields_set)


class TaskReplace(TaskPatch):
    """PUT: title is required; description and completed change only when sent (null clears description)."""

    # Edit forms send the fields they show (`{"title", "description"}`): filling a left-out `completed` with
    # `false` would silently un-complete the task, so nothing left out is replaced.
    title: Title


# Serialised by `TaskOut._utc_z` as RFC 3339 text, which the published schema says.
Timestamp = Annotated[datetime, WithJsonSchema({"type": "string", "format": "date-time"})]


def utc_z(value: datetime) -> str:
    """An aware time as RFC 3339 UTC with microseconds: 2026-01-01T00:00:00.000000Z."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: str
    title: str
    description: str | None
    completed: bool
    created_at: Timestamp
    updated_at: Timestamp

    @field_serializer("created_at", "updated_at")
    def _utc_z(self, value: datetime) -> str:
        return utc_z(value)


class ListQuery(BaseModel):
    """The list endpoint's query string."""

    status: Literal["all", "pending", "completed"] = "all"
    sort: Literal["created", "-created", "updated", "-updated", "title", "-title"] = "-created"
    # A query parameter is absent, never null: `SkipJsonSchema` keeps null out of the published schema.
    q: Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX), Storable] | SkipJsonSchema[None] = _optional(
        "Only tasks whose title or description contains this text, ignoring case."
    )
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=INT64_MAX)
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CURSOR_CHARS)] | SkipJsonSchema[None] = (
        _optional("The previous page's `X-Next-Cursor`: the page after it (with the same filters and sort).")
    )
