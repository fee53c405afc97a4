"""Idempotency-Key on POST: a retried create returns the task the first attempt made.

The (user, key) primary key is what makes this race-safe: when two attempts with the same key run
at once, both may insert a task, but only one can insert the key; the other's transaction (task
included) rolls back and it answers with the winner's task instead.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from task_service import store
from task_service.models import IdempotencyKey, utcnow

KEY_LIFETIME = timedelta(hours=24)
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII, as header values should be


class KeyReused(Exception):
    """The key was already used by this user for a different request body."""


def fingerprint(values: dict[str, Any]) -> str:
    """The same validated body gives the same fingerprint, whatever its key order or spacing."""
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def purge_expired(session: AsyncSession, user_id: str | None = None) -> None:
    statement = delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - KEY_LIFETIME)
    if user_id is not None:
        statement = statement.where(IdempotencyKey.user_id == user_id)
    await session.execute(statement)


async def _replay(session: AsyncSession, record: IdempotencyKey, request_hash: str) -> store.TaskRow:
    if record.request_hash != request_hash:
        raise KeyReused
    # The original task may have been deleted since; then there is nothing to return (404).
    return await store.get_task(session, record.user_id, record.task_id)


async def _attempt(session: AsyncSession, user_id: str, key: str, values: dict[str, Any]) -> tuple[store.TaskRow, bool]:
    request_hash = fingerprint(values)
    async with session.begin():
        await purge_expired(session, user_id)
        record = await session.scalar(
            select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        )
        if record is not None:
            return await _replay(session, record, request_hash), True
        task = await store.create_task(session, user_id, values)
        session.add(
            IdempotencyKey(user_id=user_id, key=key, request_hash=request_hash, task_id=task.id, created_at=utcnow())
        )
        await session.flush()
        return task, False


async def create_once(
    session: AsyncSession, user_id: str, key: str, values: dict[str, Any]
) -> tuple[store.TaskRow, bool]:
    """The task for this key, and whether it already existed (True: this was a retry)."""
    try:
        return await _attempt(session, user_id, key, values)
    except IntegrityError:
        # A concurrent attempt with this key committed first; this one rolled back, task and all.
        # Looking again finds the winner's record and replays it.
        return await _attempt(session, user_id, key, values)
