"""The real task service and the real gateway as separate processes, shared by the end-to-end tests of a module."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.services import Service, new_secret, running_gateway, running_task_service


@dataclass
class System:
    gateway: Service
    service: Service
    user_secret: str
    internal_secret: str

    def token(self, sub: str, ttl: int = 900) -> str:
        now = int(time.time())
        return jwt.encode({"sub": sub, "iat": now, "exp": now + ttl}, self.user_secret, algorithm="HS256")

    def client(self, sub: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token(sub)}"} if sub else {}
        return httpx.Client(base_url=self.gateway.url, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    work: Path = tmp_path_factory.mktemp("e2e")
    user_secret, internal_secret = new_secret(), new_secret()
    with (
        running_task_service(work, internal_secret) as service,
        running_gateway(work, service.url, internal_secret, {"GATEWAY_JWT_SECRET": user_secret}) as gateway,
    ):
        yield System(gateway, service, user_secret, internal_secret)
