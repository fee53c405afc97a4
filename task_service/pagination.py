"""Opaque keyset cursors for the list route.

A cursor only records where the previous page ended (the sort and that task's sort key and id),
as base64url JSON. It is not signed because it needs no secrecy: the user filter is applied on
every request whatever the cursor says, so a forged cursor can only move within the caller's own
tasks. Its content is still validated strictly, so a bad one is a 422, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from task_service.models import TITLE_MAX, storable_text

MAX_CURSOR_CHARS = 1024
_ID_MAX = 2**63 - 1


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class Position:
    """The last task of a page, by the page's ordering: its sort key, then its id."""

    sort: str
    key: datetime | str
    id: int


def _key_field(sort: str) -> str:
    return sort.lstrip("-")


def encode(position: Position) -> str:
    key = position.key.isoformat() if isinstance(position.key, datetime) else position.key
    payload = json.dumps({"s": position.sort, "k": key, "i": position.id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()


def decode(cursor: str, sort: str) -> Position:
    """The position in `cursor`, which must come from a page listed with the same sort."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("not a cursor from this service") from exc
    if not isinstance(data, dict) or set(data) != {"s", "k", "i"}:
        raise InvalidCursor("not a cursor from this service")
    if data["s"] != sort:
        raise InvalidCursor("the cursor was made for a different sort order")
    task_id, key = data["i"], data["k"]
    if isinstance(task_id, bool) or not isinstance(task_id, int) or not 1 <= task_id <= _ID_MAX:
        raise InvalidCursor("not a cursor from this service")
    if not isinstance(key, str) or len(key) > 4 * TITLE_MAX:  # lower() may lengthen a title
        raise InvalidCursor("not a cursor from this service")
    try:
        storable_text(key)
    except ValueError as exc:
        raise InvalidCursor("not a cursor from this service") from exc
    if _key_field(sort) == "title":
        return Position(sort, key, task_id)
    try:
        moment = datetime.fromisoformat(key)
    except ValueError as exc:
        raise InvalidCursor("not a cursor from this service") from exc
    if moment.tzinfo is None:
        raise InvalidCursor("not a cursor from this service")
    return Position(sort, moment, task_id)
