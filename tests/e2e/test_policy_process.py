"""The policy file with a real gateway process: a policy that does not validate stops the start with exit 1 and
one line; SIGHUP swaps a valid file in, in every worker, and refuses an invalid one with one log line while
the running policy stays."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt

from tests.gateway_fixtures import Recorder, recording_upstream
from tests.support.processes import RunningProcess, clean_env, free_port, start_process
from tests.support.services import new_secret

DEADLINE_S = 20.0

POLICY = """
upstreams:
  tasks: {{url: "{first}"}}
  other: {{url: "{second}"}}
routes:
  - path: /api/{{user_id}}/tasks
    methods: [GET]
    upstream: {target}
    match: {{user_id: sub}}
{extra}
"""
STATUS_ROUTE = """  - path: /status
    methods: [GET]
    upstream: other
    auth: none
"""


def run_gateway(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway"], env=clean_env(env), capture_output=True, text=True, timeout=60, check=False
    )


def test_a_policy_that_does_not_validate_stops_the_start_with_exit_1_and_one_line(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        POLICY.format(first="http://127.0.0.1:1", second="http://127.0.0.1:2", target="tasks", extra="")
        + "  - path: /orgs/{org_id}/notes\n    methods: [GET]\n    upstream: other\n    match: {org: org_ids}\n"
    )
    done = run_gateway(
        {
            "GATEWAY_POLICY_FILE": str(policy),
            "GATEWAY_JWT_SECRET": new_secret(),
            "GATEWAY_INTERNAL_SECRET": new_secret(),
        }
    )
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line == (
        f"gateway: policy error: {policy}:14: route 2 (/orgs/{{org_id}}/notes): "
        "match: the path has no parameter 'org' (it has: org_id)"
    )


def test_a_policy_file_and_an_upstream_url_together_are_a_configuration_error(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(first="http://127.0.0.1:1", second="http://127.0.0.1:2", target="tasks", extra=""))
    done = run_gateway(
        {
            "GATEWAY_POLICY_FILE": str(policy),
            "GATEWAY_UPSTREAM_URL": "http://127.0.0.1:1",
            "GATEWAY_JWT_SECRET": new_secret(),
            "GATEWAY_INTERNAL_SECRET": new_secret(),
        }
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("gateway: configuration error: GATEWAY_UPSTREAM_URL is set, but GATEWAY_POLICY_FILE")


def wait_for_lines(gateway: RunningProcess, text: str, count: int) -> None:
    """Poll the log until `count` lines hold `text` (one per worker), with a deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while sum(text in line for line in gateway.log_text().splitlines()) < count:
        assert time.monotonic() < deadline, f"fewer than {count} log lines with {text!r}:\n{gateway.log_tail()}"
        time.sleep(0.05)


def statuses(url: str, token: str, path: str = "/api/alice/tasks", n: int = 8) -> list[int]:
    """n requests, each on its own connection, so the kernel spreads them over the workers."""
    out = []
    for _ in range(n):
        with httpx.Client(timeout=10) as client:
            out.append(client.get(f"{url}{path}", headers={"Authorization": f"Bearer {token}"}).status_code)
    return out


async def test_sighup_reloads_the_policy_in_every_worker_and_refuses_an_invalid_file(tmp_path: Path) -> None:
    async with recording_upstream() as first, recording_upstream() as second:
        await asyncio.to_thread(reload_scenario, tmp_path, first, second)


def reload_scenario(tmp_path: Path, first: Recorder, second: Recorder) -> None:
    policy = tmp_path / "policy.yaml"
    urls = {"first": first.url, "second": second.url}
    policy.write_text(POLICY.format(**urls, target="tasks", extra=""))
    secret, port = new_secret(), free_port()
    env = clean_env(
        {
            "GATEWAY_PORT": str(port),
            "GATEWAY_POLICY_FILE": str(policy),
            "GATEWAY_JWT_SECRET": secret,
            "GATEWAY_INTERNAL_SECRET": new_secret(),
            "GATEWAY_WORKERS": "2",
        }
    )
    url = f"http://127.0.0.1:{port}"
    gateway = start_process("gateway", [sys.executable, "-m", "gateway"], env, f"{url}/healthz", tmp_path)
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, secret, algorithm="HS256")
    try:
        assert statuses(url, token) == [200] * 8
        assert (len(first.received), len(second.received)) == (8, 0)
        assert statuses(url, token, "/status") == [404] * 8

        # A valid file: the task route now goes to the other upstream, and a public route appears.
        policy.write_text(POLICY.format(**urls, target="other", extra=STATUS_ROUTE))
        os.kill(gateway.popen.pid, signal.SIGHUP)
        wait_for_lines(gateway, "policy reloaded from", 2)
        assert statuses(url, token) == [200] * 8
        assert statuses(url, token, "/status") == [200] * 8
        assert (len(first.received), len(second.received)) == (8, 16)
        assert {got.header("X-User-Id") == [] for got in second.received[8:]} == {True}  # /status: no identity

        # An invalid file: refused with one log line per worker, and the running policy stays.
        policy.write_text(POLICY.format(**urls, target="nowhere", extra=STATUS_ROUTE))
        os.kill(gateway.popen.pid, signal.SIGHUP)
        wait_for_lines(gateway, "policy reload refused", 2)
        refusals = [line for line in gateway.log_text().splitlines() if "policy reload refused" in line]
        assert len(refusals) == 2
        assert all("upstream 'nowhere' is not defined" in line and str(policy) in line for line in refusals)
        assert statuses(url, token) == [200] * 8
        assert (len(first.received), len(second.received)) == (8, 24)
        assert gateway.popen.poll() is None
    finally:
        assert gateway.stop() == 0
