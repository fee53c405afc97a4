"""`taskgate policy check` and `taskgate policy explain` as an operator runs them (real subprocesses)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway_fixtures import INTERNAL_SECRET, JWT_SECRET, make_token
from tests.support.processes import REPO_ROOT, clean_env

TASKGATE = [sys.executable, "-c", "import sys; from taskgate.cli import main; sys.exit(main())"]
JOBS_SECRET = "jobs-secret-" + "j" * 30
GATEWAY_ENV = {"GATEWAY_JWT_SECRET": JWT_SECRET, "GATEWAY_INTERNAL_SECRET": INTERNAL_SECRET}


def taskgate(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TASKGATE, *args],
        env=clean_env(GATEWAY_ENV if env is None else env),
        cwd=REPO_ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_accepts_the_default_example() -> None:
    result = taskgate("policy", "check", "deploy/policy.example.yaml")
    assert result.returncode == 0, result.stderr
    first, *routes = result.stdout.splitlines()
    assert first == "deploy/policy.example.yaml: ok — 3 routes, upstreams: task-service; issuers: default"
    assert [line.split()[1] for line in routes] == [
        "/api/{user_id}/tasks",
        "/api/{user_id}/tasks/{id:int}",
        "/api/{user_id}/tasks/{id:int}/complete",
    ]
    assert result.stderr == ""


def test_check_accepts_the_multi_upstream_example_with_its_secret_set() -> None:
    result = taskgate(
        "policy", "check", "deploy/policy.multi.example.yaml", env={**GATEWAY_ENV, "JOBS_JWT_SECRET": JOBS_SECRET}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("deploy/policy.multi.example.yaml: ok — 6 routes, upstreams: task-service, notes;")
    assert "/status" in result.stdout and "auth: none" in result.stdout
    assert JOBS_SECRET not in result.stdout + result.stderr


def test_check_refuses_the_multi_example_without_its_secret() -> None:
    result = taskgate("policy", "check", "deploy/policy.multi.example.yaml")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "taskgate policy check: deploy/policy.multi.example.yaml:16: issuer 'jobs': "
        "secret_env: neither JOBS_JWT_SECRET nor JOBS_JWT_SECRET_FILE is set\n"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "upstreams: {a: {url: 'http://127.0.0.1:1'}}\nroutes:\n  - path: /x/{id}\n    methods: [GET]\n"
            "    upstream: a\n    match: {user: sub}\n",
            "policy.yaml:6: route 1 (/x/{id}): match: the path has no parameter 'user' (it has: id)",
        ),
        ("upstreams: {a: {url: 'http://127.0.0.1:1'}}\nroutes:\n  - {path: /x, methods: [GET], upstream: b}\n",
         "policy.yaml:3: route 1 (/x): upstream 'b' is not defined under 'upstreams'"),
        ("routes: [\n", "policy.yaml:2: not valid YAML"),
    ],
)  # fmt: skip
def test_check_refuses_a_bad_file_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    result = taskgate("policy", "check", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"taskgate policy check: {tmp_path}/")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_check_needs_the_gateways_settings_and_names_what_is_missing() -> None:
    result = taskgate("policy", "check", "deploy/policy.example.yaml", env={"GATEWAY_JWT_SECRET": JWT_SECRET})
    assert result.returncode == 1
    assert "GATEWAY_INTERNAL_SECRET is not set" in result.stderr
    missing = taskgate("policy", "check", "no/such/policy.yaml")
    assert missing.returncode == 1 and "no/such/policy.yaml: cannot read the policy file" in missing.stderr


def test_explain_walks_a_request_through_the_policy_without_printing_the_token() -> None:
    token = make_token("alice")
    refused = taskgate("policy", "explain", "get", "/api/bob/tasks/7", "--token", token)
    assert refused.returncode == 0, refused.stderr
    assert "route 2 (/api/{user_id}/tasks/{id:int}) matched (user_id=bob, id=7)" in refused.stdout
    assert "token     ok: verified by issuer default" in refused.stdout
    assert 'FAILED: match {user_id} = claim sub (token has ["alice"])' in refused.stdout
    assert refused.stdout.splitlines()[-1] == "answer    403, nothing forwarded"
    allowed = taskgate("policy", "explain", "PATCH", "/api/alice/tasks/7/complete", "--token", "-", stdin=token + "\n")
    assert "upstream  PATCH http://127.0.0.1:8001/api/alice/tasks/7/complete" in allowed.stdout
    assert allowed.stdout.splitlines()[-1] == "answer    forwarded to task-service; the upstream's answer is relayed"
    for result in (refused, allowed):
        assert token not in result.stdout + result.stderr and JWT_SECRET not in result.stdout + result.stderr


def test_explain_with_a_policy_file_and_an_unknown_issuer_name() -> None:
    env = {**GATEWAY_ENV, "JOBS_JWT_SECRET": JOBS_SECRET}
    status = taskgate("policy", "explain", "GET", "/status", "--policy", "deploy/policy.multi.example.yaml", env=env)
    assert "auth      none: no token needed" in status.stdout
    bad = taskgate("policy", "explain", "GET", "/status", "--issuer", "nope")
    assert bad.returncode == 1 and "--issuer 'nope' is not an issuer of the policy" in bad.stderr
