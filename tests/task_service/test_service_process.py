"""`python -m task_service` as a real process: refuses to start without a secret, serves with one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.processes import REPO_ROOT, clean_env, free_port, running
from tests.task_service.signer import claims_for, sign


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # The processes run in tmp_path (the default database is relative to it), so point them at the code.
    return clean_env(
        {
            "PYTHONPATH": str(REPO_ROOT),
            "TASKS_PORT": str(free_port()),
            "TASKS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}",
            **extra,
        }
    )


@pytest.mark.slow
@pytest.mark.parametrize("secret", [None, "too-short-to-use"])
def test_refuses_to_start_without_a_usable_secret(tmp_path: Path, secret: str | None) -> None:
    env = _env(tmp_path, **({"TASKS_INTERNAL_SECRET": secret} if secret else {}))
    result = subprocess.run(
        [sys.executable, "-m", "task_service"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "TASKS_INTERNAL_SECRET" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    if secret:
        assert secret not in result.stderr + result.stdout
    assert not (tmp_path / "tasks.db").exists()


@pytest.mark.slow
def test_serves_with_a_secret_and_creates_the_default_data_directory(tmp_path: Path) -> None:
    secret = "p" * 32
    env = _env(tmp_path, TASKS_INTERNAL_SECRET=secret)
    del env["TASKS_DATABASE_URL"]  # the default, ./data/tasks.db, in a directory that does not exist yet
    url = f"http://127.0.0.1:{env['TASKS_PORT']}"
    with running(
        "task_service", [sys.executable, "-m", "task_service"], env, f"{url}/readyz", tmp_path, cwd=tmp_path
    ) as proc:
        response = httpx.get(f"{url}/api/alice/tasks", timeout=5)
        assert response.status_code == 401
        assert "server" not in response.headers
        assert (tmp_path / "data" / "tasks.db").is_file()
        _check_raw_target_on_a_real_server(url, secret)
    assert secret not in proc.log_text()


def _check_raw_target_on_a_real_server(url: str, secret: str) -> None:
    """uvicorn's raw path and query are what the signer signs: byte for byte, escapes kept."""
    raw_target = "/api/alice/tasks?q=%25done&sort=-title"
    with httpx.Client(base_url=url, timeout=5) as client:

        def get(signed_for: str) -> int:
            assertion = sign(claims_for("GET", signed_for, "alice"), secret=secret)
            return client.get(raw_target, headers={"X-Gateway-Assertion": assertion}).status_code

        assert get(raw_target) == 200
        assert get("/api/alice/tasks?q=%done&sort=-title") == 401
        assert get("/api/alice/tasks") == 401
