"""Start the real task service and gateway (`python -m task_service`, `python -m gateway`) for tests."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .policy import policy_file_under_test
from .processes import Launch, RunningProcess, clean_env, running_on_port


@dataclass
class Service:
    url: str
    process: RunningProcess


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@contextmanager
def running_task_service(work_dir: Path, internal_secret: str, database_url: str | None = None) -> Iterator[Service]:
    """The task service on a free port with its own SQLite file in work_dir (or on database_url)."""

    def launch(port: int) -> Launch:
        env = clean_env(
            {
                "TASKS_HOST": "127.0.0.1",
                "TASKS_PORT": str(port),
                "TASKS_INTERNAL_SECRET": internal_secret,
                "TASKS_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{work_dir / 'tasks.db'}",
            }
        )
        return Launch([sys.executable, "-m", "task_service"], env, f"http://127.0.0.1:{port}/healthz")

    with running_on_port("task_service", launch, work_dir) as (proc, port):
        yield Service(f"http://127.0.0.1:{port}", proc)


@contextmanager
def running_gateway(
    work_dir: Path,
    upstream_url: str,
    internal_secret: str,
    settings: Mapping[str, str],
    *,
    port: int | None = None,
    policy_file: Path | None = None,
) -> Iterator[Service]:
    """The gateway in front of upstream_url; settings carry the JWT set-up (GATEWAY_…).

    Give a port when something must know the gateway's URL before it starts (the demo page does); a
    policy_file names its upstreams itself (upstream_url is then unused).
    """

    policy_file = policy_file or policy_file_under_test(upstream_url)
    upstream = (
        {"GATEWAY_UPSTREAM_URL": upstream_url} if policy_file is None else {"GATEWAY_POLICY_FILE": str(policy_file)}
    )

    def launch(chosen: int) -> Launch:
        env = clean_env(
            {
                "GATEWAY_HOST": "127.0.0.1",
                "GATEWAY_PORT": str(chosen),
                "GATEWAY_INTERNAL_SECRET": internal_secret,
                **upstream,
                **settings,
            }
        )
        return Launch([sys.executable, "-m", "gateway"], env, f"http://127.0.0.1:{chosen}/healthz")

    with running_on_port("gateway", launch, work_dir, port=port) as (proc, chosen):
        yield Service(f"http://127.0.0.1:{chosen}", proc)


@contextmanager
def running_notes(work_dir: Path, internal_secret: str) -> Iterator[Service]:
    """The notes example (examples/notes/app.py) under uvicorn on a free port, as docs/upstreams.md runs it."""

    def launch(port: int) -> Launch:
        env = clean_env({"NOTES_INTERNAL_SECRET": internal_secret})
        argv = [sys.executable, "-m", "uvicorn", "examples.notes.app:app", "--host", "127.0.0.1", "--port", str(port)]
        return Launch(argv, env, f"http://127.0.0.1:{port}/docs")

    with running_on_port("notes", launch, work_dir) as (proc, port):
        yield Service(f"http://127.0.0.1:{port}", proc)
