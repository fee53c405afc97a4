"""GATEWAY_WORKERS=N: N processes share one public port (SO_REUSEPORT), each with its own admin port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt

from tests.support.processes import clean_env, free_port, running
from tests.support.services import new_secret, running_task_service


def admin_port_pair() -> int:
    """A port p such that p and p + 1 are both free now (worker i serves metrics on p + i)."""
    while True:
        candidate = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate + 1))
            except OSError:
                continue
        return candidate


def test_a_worker_that_cannot_listen_stops_the_replica(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        env = clean_env(
            {
                "GATEWAY_PORT": str(free_port()),
                "GATEWAY_ADMIN_PORT": str(busy - 1),
                "GATEWAY_WORKERS": "2",
                "GATEWAY_JWT_SECRET": new_secret(),
                "GATEWAY_INTERNAL_SECRET": new_secret(),
            }
        )
        result = subprocess.run(
            [sys.executable, "-m", "gateway"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
    assert result.returncode == 1
    assert f"cannot listen: admin 127.0.0.1:{busy}" in result.stderr
    assert "Traceback" not in result.stderr


def test_two_workers_share_the_port_and_stop_together(tmp_path: Path) -> None:
    internal, user = new_secret(), new_secret()
    with running_task_service(tmp_path, internal) as service:
        port, admin = free_port(), admin_port_pair()
        env = clean_env(
            {
                "GATEWAY_PORT": str(port),
                "GATEWAY_ADMIN_PORT": str(admin),
                "GATEWAY_WORKERS": "2",
                "GATEWAY_UPSTREAM_URL": service.url,
                "GATEWAY_JWT_SECRET": user,
                "GATEWAY_INTERNAL_SECRET": internal,
            }
        )
        url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "gateway"]
        with running("gateway", argv, env, f"{url}/healthz", tmp_path, timeout_s=90) as gateway:
            token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, user, algorithm="HS256")
            headers = {"Authorization": f"Bearer {token}"}
            deadline = time.monotonic() + 90
            served: dict[int, float] = {}
            # Fresh connections until both workers have answered; the kernel spreads them across sockets.
            while len(served) < 2:
                assert time.monotonic() < deadline, f"only workers {sorted(served)} answered"
                assert httpx.get(f"{url}/api/alice/tasks", headers=headers).status_code == 200
                for index in (0, 1):
                    try:
                        text = httpx.get(f"http://127.0.0.1:{admin + index}/metrics").text
                    except httpx.HTTPError:
                        continue
                    for line in text.splitlines():
                        if line.startswith("taskgate_gateway_requests_total{") and 'status="200"' in line:
                            served[index] = float(line.rsplit(" ", 1)[1])
            assert all(count >= 1 for count in served.values())
            gateway.stop()
            assert gateway.popen.returncode == 0
        assert httpx.get(f"{service.url}/healthz").status_code == 200
