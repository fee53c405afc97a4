"""Alembic migrations for both databases; run through task_service.migrate, never by hand-written SQL."""
