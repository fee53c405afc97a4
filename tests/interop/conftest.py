"""A real Better Auth issuer, gateway and task service per JWT mode, shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.better_auth import BetterAuthUser, Issuer, running_issuer
from tests.support.services import Service, new_secret, running_gateway, running_task_service

MODES = ("hs256", "eddsa")


@dataclass
class Stack:
    mode: str
    shared_secret: str | None
    issuer: Issuer
    gateway: Service
    alice: BetterAuthUser
    bob: BetterAuthUser

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.gateway.url, timeout=10.0)


def issuer_settings(mode: str, shared_secret: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    settings = {"JWT_MODE": mode, **(extra or {})}
    if shared_secret is not None:
        settings["GATEWAY_JWT_SECRET"] = shared_secret
    return settings


def gateway_settings(
    issuer: Issuer, shared_secret: str | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Trust exactly this issuer: its origin as iss and aud, its shared secret or its JWKS."""
    settings = {
        "GATEWAY_JWT_ISSUER": issuer.origin,
        "GATEWAY_JWT_AUDIENCE": issuer.origin,
        "GATEWAY_JWKS_REFETCH_COOLDOWN_S": "0",
        **(extra or {}),
    }
    if shared_secret is None:
        settings["GATEWAY_JWKS_URL"] = issuer.jwks_url
    else:
        settings["GATEWAY_JWT_SECRET"] = shared_secret
    return settings


@pytest.fixture(scope="module")
def internal_secret() -> str:
    return new_secret()


@pytest.fixture(scope="module")
def task_service(tmp_path_factory: pytest.TempPathFactory, internal_secret: str) -> Iterator[Service]:
    with running_task_service(tmp_path_factory.mktemp("tasks"), internal_secret) as service:
        yield service


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path


@contextmanager
def issuer_and_gateway(
    work_dir: Path,
    mode: str,
    task_service: Service,
    internal_secret: str,
    issuer_extra: Mapping[str, str] | None = None,
    gateway_extra: Mapping[str, str] | None = None,
) -> Iterator[tuple[Issuer, Service, str | None]]:
    """An issuer in mode and a gateway that trusts it, in front of the shared task service."""
    shared_secret = new_secret() if mode == "hs256" else None
    with ExitStack() as stack:
        issuer = stack.enter_context(running_issuer(work_dir, issuer_settings(mode, shared_secret, issuer_extra)))
        gateway = stack.enter_context(
            running_gateway(
                work_dir, task_service.url, internal_secret, gateway_settings(issuer, shared_secret, gateway_extra)
            )
        )
        yield issuer, gateway, shared_secret


@pytest.fixture(scope="module", params=MODES)
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    task_service: Service,
    internal_secret: str,
) -> Iterator[Stack]:
    mode: str = request.param
    with issuer_and_gateway(tmp_path_factory.mktemp(mode), mode, task_service, internal_secret) as parts:
        issuer, gateway, shared_secret = parts
        yield Stack(mode, shared_secret, issuer, gateway, issuer.sign_up("alice"), issuer.sign_up("bob"))
