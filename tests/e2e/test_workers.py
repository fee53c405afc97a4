"""GATEWAY_WORKERS=N: N processes share one public port (SO_REUSEPORT), each with its own admin port."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import jwt

from tests.support.processes import clean_env, free_port, running
from tests.support.services import new_secret, running_task_service


def test_two_workers_share_the_port_and_stop_together(tmp_path: Path) -> None:
    internal, user = new_secret(), new_secret()
    port, admin = free_port(), free_port()
    while admin + 1 == port:
        admin = free_port()
    with running_task_service(tmp_path, internal) as service:
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
