"""ETag / If-Match for optimistic concurrency: a task's ETag is its version as a strong tag, "<n>".

If-Match uses the strong comparison (RFC 9110 §13.1.1), so weak tags (W/"n") never match, and a
value that is not a list of entity tags matches nothing rather than everything. If-None-Match (on
GET, to revalidate a cached copy) uses the weak comparison, as RFC 9110 §13.1.2 asks.
"""

from __future__ import annotations

import re

from task_service.store import Precondition

_STRONG_TAG = re.compile(r'"([0-9]{1,18})"')
_VERSION_TAG = re.compile(r'(?:W/)?"([0-9]{1,18})"')
_ANY_TAG = re.compile(r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"')


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(values: list[str]) -> Precondition | None:
    """None when there is no If-Match header (the write is unconditional)."""
    if not values:
        return None
    versions: set[int] = set()
    for value in values:
        for item in (part.strip() for part in value.split(",")):
            if item == "*":
                return Precondition(versions=None)
            strong = _STRONG_TAG.fullmatch(item)
            if strong:
                versions.add(int(strong.group(1)))
            elif not _ANY_TAG.fullmatch(item):
                return Precondition(versions=frozenset())  # malformed: matches nothing
    return Precondition(versions=frozenset(versions))


def is_current(if_none_match: list[str], version: int) -> bool:
    """True when an If-None-Match header names this version (or '*'): the client's copy is current."""
    for value in if_none_match:
        for item in (part.strip() for part in value.split(",")):
            tag = _VERSION_TAG.fullmatch(item)
            if item == "*" or (tag and int(tag.group(1)) == version):
                return True
    return False
