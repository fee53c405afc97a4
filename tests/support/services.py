"""Start the real task service and gateway (`python -m task_service`, `python -m gateway`) for tests."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .processes import RunningProcess, clean_env, free_port, running


@dataclass
class Service:
    url: str
    process: RunningProcess


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@contextmanager
def running_task_service(work_dir: Path, internal_secret: str) -> Iterator[Service]:
    """The task service on a free port with its own SQLite file in work_dir."""
    port = free_port()
    env = clean_env(
        {
            "TASKS_HOST": "127.0.0.1",
            "TASKS_PORT": str(port),
            "TASKS_INTERNAL_SECRET": internal_secret,
            "TASKS_DATABASE_URL": f"sqlite+aiosqlite:///{work_dir / 'tasks.db'}",
        }
    )
    url = f"http://127.0.0.1:{port}"
    with running("task_service", [sys.executable, "-m", "task_service"], env, f"{url}/healthz", work_dir) as proc:
        yield Service(url, proc)


@contextmanager
def running_gateway(
    work_dir: Path,
    upstream_url: str,
    internal_secret: str,
    settings: Mapping[str, str],
    *,
    port: int | None = None,
) -> Iterator[Service]:
    """The gateway in front of upstream_url; settings carry the JWT set-up (GATEWAY_…).

    Give a port when something must know the gateway's URL before it starts (the demo page does).
    """
    port = port or free_port()
    env = clean_env(
        {
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_UPSTREAM_URL": upstream_url,
            "GATEWAY_INTERNAL_SECRET": internal_secret,
            **settings,
        }
    )
    url = f"http://127.0.0.1:{port}"
    with running("gateway", [sys.executable, "-m", "gateway"], env, f"{url}/healthz", work_dir) as proc:
        yield Service(url, proc)
