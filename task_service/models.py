"""The database schema, as SQLAlchemy ORM classes shared by the queries and the migrations."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Dialect, Index, Integer, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

USER_ID_MAX = 128
IDEMPOTENCY_KEY_MAX = 255
TITLE_MAX = 200
DESCRIPTION_MAX = 1000


class UTCDateTime(TypeDecorator[datetime]):
    """Always hand out aware UTC datetimes, whatever the database keeps.

    SQLite has no time zone type and gives back naive values; PostgreSQL keeps timestamptz. Storing
    naive UTC on SQLite keeps its text values sortable, which the list ordering relies on.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def storable_text(value: str) -> str:
    """Text both databases can keep: PostgreSQL refuses NUL, and neither stores lone surrogates.

    Checked on input, so such text is a 422 rather than a database error.
    """
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def utcnow() -> datetime:
    return datetime.now(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY; elsewhere a 64-bit key leaves room to grow.
_ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Task(Base):
    __tablename__ = "tasks"
    # AUTOINCREMENT: SQLite would otherwise reuse the id of a deleted last row, and an id (with its
    # version as ETag) must never name two different tasks.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(USER_ID_MAX))
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    description: Mapped[str | None] = mapped_column(String(DESCRIPTION_MAX))
    completed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)


class IdempotencyKey(Base):
    """A create the user asked to be done once: the retry with the same key gets the same task.

    No foreign key to tasks: the record must outlive a deleted task, or a late retry would quietly
    create it again.
    """

    __tablename__ = "idempotency_keys"

    user_id: Mapped[str] = mapped_column(String(USER_ID_MAX), primary_key=True)
    key: Mapped[str] = mapped_column(String(IDEMPOTENCY_KEY_MAX), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[int] = mapped_column(_ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


# One index per list ordering (see store.py): the user filter first, then the sort key, then id as
# the tie-breaker that keeps keyset pages stable.
Index("ix_tasks_user_created", Task.user_id, Task.created_at, Task.id)
Index("ix_tasks_user_updated", Task.user_id, Task.updated_at, Task.id)
Index("ix_tasks_user_title", Task.user_id, func.lower(Task.title), Task.id)
Index("ix_tasks_user_status_created", Task.user_id, Task.completed, Task.created_at, Task.id)
