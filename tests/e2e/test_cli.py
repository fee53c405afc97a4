"""The `taskgate` command as a user runs it: `taskgate up` prints a curl line that works; `taskgate token`."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import jwt
import pytest

from taskgate.cli import parse_duration
from tests.support.processes import clean_env, free_port
from tests.support.revocation import refused_within, tasks_status

TASKGATE = [sys.executable, "-c", "import sys; from taskgate.cli import main; sys.exit(main())"]


def start_up(cwd: Path, env: dict[str, str], port: int) -> tuple[subprocess.Popen[str], list[str]]:
    """Run `taskgate up` and read its output up to the banner's last line (it exits if it cannot start)."""
    proc = subprocess.Popen(
        [*TASKGATE, "up", "--port", str(port), "--service-port", str(free_port())],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or "new tokens:" not in lines[-1]:
        line = proc.stdout.readline()
        if not line:
            proc.wait(10)
            raise AssertionError("taskgate up ended early:\n" + "".join(lines))
        lines.append(line)
    return proc, lines


def test_up_prints_a_working_curl_line(tmp_path: Path) -> None:
    port = free_port()
    proc, lines = start_up(tmp_path, clean_env({"PATH": "/nonexistent-so-node-is-not-found"}), port)
    try:
        output = "".join(lines)
        assert "taskgate is up" in output, output
        post = next(line for line in lines if "-X POST" in line)
        token = re.search(r"Bearer ([A-Za-z0-9_.-]+)", post)
        assert token is not None
        headers = {"Authorization": f"Bearer {token.group(1)}"}
        created = httpx.post(f"http://127.0.0.1:{port}/api/demo-user/tasks", json={"title": "Try"}, headers=headers)
        assert created.status_code == 201
        listed = httpx.get(f"http://127.0.0.1:{port}/api/demo-user/tasks", headers=headers)
        assert [t["title"] for t in listed.json()] == ["Try"]
        secrets_file = tmp_path / ".taskgate" / "dev-secrets.env"
        assert secrets_file.stat().st_mode & 0o077 == 0
        assert (tmp_path / ".taskgate" / ".gitignore").read_text() == "*\n"
        assert (tmp_path / "data" / "tasks.db").exists()
        assert "curl -s -H" in output and shlex.split(post.strip().rstrip("\\"))[0] == "curl"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0


def test_up_with_node_also_runs_better_auth_and_the_demo_page(tmp_path: Path) -> None:
    port, auth_port = free_port(), free_port()
    proc, lines = start_up(tmp_path, clean_env({"BA_PORT": str(auth_port)}), port)
    try:
        output = "".join(lines)
        assert f"demo page (sign up, then manage tasks): http://127.0.0.1:{auth_port}/" in output
        page = httpx.get(f"http://127.0.0.1:{auth_port}/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        jwks = httpx.get(f"http://127.0.0.1:{auth_port}/api/auth/jwks").json()
        assert jwks["keys"] and jwks["keys"][0]["alg"] == "EdDSA"
        post = next(line for line in lines if "-X POST" in line)
        token = re.search(r"Bearer ([A-Za-z0-9_.-]+)", post)
        assert token is not None
        claims = jwt.decode(token.group(1), options={"verify_signature": False})
        assert claims["iss"] == claims["aud"] == f"http://127.0.0.1:{auth_port}"
        created = httpx.post(
            f"http://127.0.0.1:{port}/api/demo-user/tasks",
            json={"title": "Try"},
            headers={"Authorization": f"Bearer {token.group(1)}", "Origin": f"http://127.0.0.1:{auth_port}"},
        )
        assert created.status_code == 201
        assert created.headers["Access-Control-Allow-Origin"] == f"http://127.0.0.1:{auth_port}"
        checks = httpx.get(f"http://127.0.0.1:{port}/readyz").json()["checks"]
        assert checks["jwks"] is checks["revocations"] is True
        origin = f"http://127.0.0.1:{auth_port}"
        # Sign-out ends API access: the issuer's revocation feed is on and the gateway follows it.
        with httpx.Client(base_url=origin, headers={"Origin": origin}) as browser:
            body = {"name": "Ada", "email": "ada@example.com", "password": "correct horse battery staple"}
            user_id = browser.post("/api/auth/sign-up/email", json=body).json()["user"]["id"]
            user_token = browser.get("/api/auth/token").json()["token"]
            assert tasks_status(f"http://127.0.0.1:{port}", user_id, user_token) == 200
            assert browser.post("/api/auth/sign-out", json={}).status_code == 200
        assert refused_within(f"http://127.0.0.1:{port}", user_id, user_token) == 401
        assert f"GATEWAY_JWT_ISSUER={origin} GATEWAY_JWT_AUDIENCE={origin} .venv/bin/taskgate token" in lines[-1]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0


def test_token_uses_the_configured_secret(tmp_path: Path) -> None:
    secret = "cli-test-secret-" + "z" * 30
    result = subprocess.run(
        [*TASKGATE, "token", "alice", "--ttl", "15m"],
        cwd=tmp_path,
        env=clean_env({"GATEWAY_JWT_SECRET": secret, "GATEWAY_JWT_AUDIENCE": "http://app.example"}),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    claims = jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"], audience="http://app.example")
    assert claims["sub"] == "alice"
    assert claims["exp"] - claims["iat"] == 900


@pytest.mark.parametrize(("text", "seconds"), [("900", 900), ("15m", 900), ("1h", 3600), ("2d", 172800), ("30s", 30)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5", "1y", "abc"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(Exception, match="not a duration"):
        parse_duration(text)
