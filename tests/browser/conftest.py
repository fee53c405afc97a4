"""What the browser tests share: the real stack a page talks to, and headless Chromium.

The stack is Better Auth's reference issuer (the page's origin, EdDSA tokens, the revocation feed), the
gateway verifying its JWKS tokens with CORS for exactly that origin, and the task service.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.better_auth import Issuer, running_issuer
from tests.support.processes import REPO_ROOT, free_port
from tests.support.services import Service, new_secret, running_gateway, running_task_service

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"


@dataclass
class Demo:
    issuer: Issuer
    gateway: Service


@contextmanager
def running_stack(
    work_dir: Path, issuer_settings: Mapping[str, str] | None = None, *, gateway_port: int | None = None
) -> Iterator[Demo]:
    """Task service, issuer (with issuer_settings added to its environment) and gateway, as `taskgate up` wires
    them; give gateway_port when something must know the gateway's URL before it starts."""
    internal_secret = new_secret()
    revocation_secret = new_secret()
    gateway_port = gateway_port or free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    with ExitStack() as stack:
        service = stack.enter_context(running_task_service(work_dir, internal_secret))
        issuer = stack.enter_context(
            running_issuer(
                work_dir,
                {
                    "JWT_MODE": "eddsa",
                    "GATEWAY_URL": gateway_url,
                    "BA_REVOCATION_SECRET": revocation_secret,
                    **(issuer_settings or {}),
                },
            )
        )
        gateway_settings = {
            "GATEWAY_JWKS_URL": issuer.jwks_url,
            "GATEWAY_JWT_ISSUER": issuer.origin,
            "GATEWAY_JWT_AUDIENCE": issuer.origin,
            "GATEWAY_CORS_ORIGINS": issuer.origin,
            "GATEWAY_REVOCATION_URL": issuer.revocations_url,
            "GATEWAY_REVOCATION_SECRET": revocation_secret,
        }
        gateway = stack.enter_context(
            running_gateway(work_dir, service.url, internal_secret, gateway_settings, port=gateway_port)
        )
        yield Demo(issuer, gateway)


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
