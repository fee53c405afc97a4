"""Brings the database schema up to date."""

from __future__ import annotations

from task_service.db import create_engine
from task_service.models import Base
from task_service.settings import DatabaseSettings


async def migrate(settings: DatabaseSettings) -> None:
    engine = create_engine(settings)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
    finally:
        await engine.dispose()
