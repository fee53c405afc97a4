"""Tasks, with a version for optimistic concurrency and one index per list ordering.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from task_service.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.String(1000), nullable=True),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_tasks_user_created", "tasks", ["user_id", "created_at", "id"])
    op.create_index("ix_tasks_user_updated", "tasks", ["user_id", "updated_at", "id"])
    op.create_index("ix_tasks_user_title", "tasks", ["user_id", sa.text("lower(title)"), "id"])
    op.create_index("ix_tasks_user_status_created", "tasks", ["user_id", "completed", "created_at", "id"])


def downgrade() -> None:
    op.drop_table("tasks")
