"""The logs of a full run (real gateway and task service processes, debug level) hold no token, secret or
Authorization value — after a run that offered them in every place an attacker or a careless client would.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import pytest

from tests.security.wire import exchange, request
from tests.support.services import new_secret, running_gateway, running_task_service

pytestmark = pytest.mark.slow

BASIC = "YWxpY2U6c2VjcmV0LXBhc3N3b3Jk"


def _token(secret: str, sub: str = "alice", ttl: int = 900) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + ttl, "jti": new_secret()[:8]}, secret, algorithm="HS256")


async def test_a_full_run_logs_no_credentials(tmp_path: Path) -> None:
    user_secret, internal_secret = new_secret(), new_secret()
    valid = _token(user_secret)
    offered = [
        valid,
        _token(user_secret, ttl=-300),  # expired
        _token(new_secret()),  # wrong secret
        _token(internal_secret),  # the internal secret as a user key
        _token(user_secret, sub="bob"),  # another user's path
    ]
    env = {"GATEWAY_JWT_SECRET": user_secret, "GATEWAY_LOG_LEVEL": "DEBUG", "GATEWAY_ACCESS_LOG": "true"}
    with (
        running_task_service(tmp_path, internal_secret) as service,
        running_gateway(tmp_path, service.url, internal_secret, env) as gateway,
    ):
        port = int(gateway.url.rsplit(":", 1)[1])
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
            created = await client.post(
                "/api/alice/tasks", json={"title": "t"}, headers={"Authorization": f"Bearer {valid}"}
            )
            assert created.status_code == 201
            for tok in offered:
                await client.get("/api/alice/tasks", headers={"Authorization": f"Bearer {tok}"})
                await client.get("/api/bob/tasks", headers={"Authorization": f"bearer {tok}"})
            await client.get("/api/alice/tasks", headers={"Authorization": f"Basic {BASIC}"})
            await client.get("/api/alice/tasks", headers={"Cookie": f"token={valid}"})
        raw_attempts = [
            request("GET", f"/api/alice/tasks?access_token={valid}", token=valid),
            f"GET /api/alice/tasks HTTP/1.1\nHost: x\nAuthorization: Bearer {valid}\n\n".encode(),
            f"GET /api/alice/tasks HTTP/1.1\r\nHost: x\r\nAuthoriz ation: Bearer {valid}\r\n\r\n".encode(),
            f"GET /api/alice/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {valid}\x01\r\n\r\n".encode(),
            request("GET", "/api/alice/tasks", f"Authorization: Bearer {valid}{'A' * 9000}"),
            request("GET", "/api/alice/tasks", f"Authorization: Bearer {valid}", f"Authorization: Basic {BASIC}"),
        ]
        for raw in raw_attempts:
            assert (await exchange(port, raw)).closed
        # direct calls to the service with credentials it must refuse (and must not log)
        service_port = int(service.url.rsplit(":", 1)[1])
        forged = jwt.encode({"sub": "alice"}, user_secret, algorithm="HS256", headers={"typ": "tg-assertion+jwt"})
        direct = request("GET", "/api/alice/tasks", f"X-Gateway-Assertion: {forged}", token=valid)
        assert (await exchange(service_port, direct)).status == 401
    logs = {name: (tmp_path / f"{name}.log").read_text(errors="replace") for name in ("gateway", "task_service")}
    # not vacuous: both processes logged this run, rejections included
    assert "token rejected" in logs["gateway"] and "request" in logs["gateway"]
    assert logs["task_service"].strip()
    secrets = [user_secret, internal_secret, BASIC, forged, *offered]
    for name, text in logs.items():
        for secret in secrets:
            for piece in [secret, *secret.split(".")]:
                if len(piece) >= 16:
                    assert piece not in text, f"{name} log holds a credential"
        assert "Bearer " not in text.replace('Bearer realm="taskgate"', ""), name
