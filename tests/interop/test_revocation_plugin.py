"""The taskgateRevocations plugin in a Better Auth that is not ours: the minimal set-up docs/better-auth.md shows
(deploy/better-auth/examples/minimal.mjs), and one with the admin plugin for bans and account deletion.

Sessions here live in cookies, as in a browser: these servers have no bearer() plugin.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.better_auth import ISSUER_DIR, PASSWORD, Issuer, running_example_issuer
from tests.support.processes import REPO_ROOT, clean_env, free_port
from tests.support.revocation import refused_within, tasks_status
from tests.support.services import Service, new_secret, running_gateway
from tests.support.snippets import marked_lines

from .conftest import gateway_settings
from .tokens import segments

pytestmark = pytest.mark.slow

MINIMAL = "examples/minimal.mjs"
DOC = REPO_ROOT / "docs" / "better-auth.md"


@dataclass
class Browser:
    """One person's cookie jar against an issuer: one Better Auth session at a time."""

    issuer: Issuer
    client: httpx.Client = field(init=False)
    user_id: str = ""
    email: str = ""

    def __post_init__(self) -> None:
        origin = self.issuer.origin
        self.client = httpx.Client(base_url=origin, headers={"Origin": origin}, timeout=10.0)

    def post(self, path: str, body: dict[str, str]) -> httpx.Response:
        response = self.client.post(f"/api/auth{path}", json=body)
        response.raise_for_status()
        return response

    def sign_up(self, name: str) -> Browser:
        self.email = f"{name}-{secrets.token_hex(4)}@example.com"
        body = {"name": name, "email": self.email, "password": PASSWORD}
        self.user_id = self.post("/sign-up/email", body).json()["user"]["id"]
        return self

    def sign_in(self, email: str) -> Browser:
        self.email = email
        self.user_id = self.post("/sign-in/email", {"email": email, "password": PASSWORD}).json()["user"]["id"]
        return self

    def jwt(self) -> str:
        response = self.client.get("/api/auth/token")
        response.raise_for_status()
        token: str = response.json()["token"]
        return token


@dataclass
class Example:
    issuer: Issuer
    gateway: Service
    secret: str
    browsers: list[Browser] = field(default_factory=list)

    def browser(self) -> Browser:
        self.browsers.append(Browser(self.issuer))
        return self.browsers[-1]

    def feed(self) -> list[dict[str, object]]:
        """Every entry in force, page after page, the way a gateway reads them."""
        revoked: list[dict[str, object]] = []
        page = self.issuer.revocations(self.secret).json()
        revoked += page["revoked"]
        while page["more"]:
            page = self.issuer.revocations(self.secret, after=page["cursor"]).json()
            revoked += page["revoked"]
        return revoked


def example(module: str, work_dir: Path, task_service: Service, internal_secret: str) -> Iterator[Example]:
    secret = new_secret()
    with ExitStack() as stack:
        issuer = stack.enter_context(running_example_issuer(work_dir, module, secret))
        revocation = {"GATEWAY_REVOCATION_URL": issuer.revocations_url, "GATEWAY_REVOCATION_SECRET": secret}
        settings = gateway_settings(issuer, None, revocation)
        gateway = stack.enter_context(running_gateway(work_dir, task_service.url, internal_secret, settings))
        ex = Example(issuer, gateway, secret)
        yield ex
        for browser in ex.browsers:
            browser.client.close()


@pytest.fixture
def minimal(tmp_path: Path, task_service: Service, internal_secret: str) -> Iterator[Example]:
    yield from example(MINIMAL, tmp_path, task_service, internal_secret)


@pytest.fixture
def with_admin(tmp_path: Path, task_service: Service, internal_secret: str) -> Iterator[Example]:
    yield from example("test-fixtures/admin-issuer.mjs", tmp_path, task_service, internal_secret)


def test_the_doc_shows_the_set_up_this_file_runs() -> None:
    shown = marked_lines(ISSUER_DIR / MINIMAL, "revocation-setup")
    assert "taskgateRevocations({ secret" in shown
    assert shown in DOC.read_text()


def test_a_minimal_better_auth_with_the_plugin_ends_api_access_at_sign_out(minimal: Example) -> None:
    laptop = minimal.browser().sign_up("kim")
    phone = minimal.browser().sign_in(laptop.email)
    signed_out, kept = laptop.jwt(), phone.jwt()
    assert segments(signed_out)[1]["sid"] != segments(kept)[1]["sid"]
    assert tasks_status(minimal.gateway.url, laptop.user_id, signed_out) == 200

    laptop.post("/sign-out", {})
    assert refused_within(minimal.gateway.url, laptop.user_id, signed_out) == 401
    assert tasks_status(minimal.gateway.url, laptop.user_id, kept) == 200
    assert {"sid": segments(signed_out)[1]["sid"]}.items() <= minimal.feed()[0].items()

    tablet = minimal.browser().sign_in(laptop.email)
    elsewhere = tablet.jwt()
    phone.post("/revoke-other-sessions", {})
    assert refused_within(minimal.gateway.url, laptop.user_id, elsewhere) == 401
    assert tasks_status(minimal.gateway.url, laptop.user_id, kept) == 200


def test_a_ban_ends_every_session_of_the_user(with_admin: Example) -> None:
    moderator = with_admin.browser().sign_up("mod")
    banned = with_admin.browser().sign_up("troll")
    second = with_admin.browser().sign_in(banned.email)
    tokens = [banned.jwt(), second.jwt()]
    moderator.post("/admin/ban-user", {"userId": banned.user_id})
    assert [refused_within(with_admin.gateway.url, banned.user_id, token) for token in tokens] == [401, 401]
    # Both sessions, and the user as of the ban (which also covers tokens that name no session), in pages of two.
    assert with_admin.issuer.revocations(with_admin.secret).json()["more"] is True
    entries = with_admin.feed()
    assert len(entries) == 3
    assert {entry.get("sid") for entry in entries} >= {segments(token)[1]["sid"] for token in tokens}
    assert any(entry.get("sub") == banned.user_id and "before" in entry for entry in entries)
    assert tasks_status(with_admin.gateway.url, moderator.user_id, moderator.jwt()) == 200


def test_a_deleted_user_is_refused(with_admin: Example) -> None:
    leaving = with_admin.browser().sign_up("leaver")
    token = leaving.jwt()
    assert tasks_status(with_admin.gateway.url, leaving.user_id, token) == 200
    leaving.post("/delete-user", {"password": PASSWORD})
    assert refused_within(with_admin.gateway.url, leaving.user_id, token) == 401
    assert any(entry.get("sub") == leaving.user_id for entry in with_admin.feed())


@pytest.mark.parametrize(
    ("module", "secret", "message"),
    [
        ("test-fixtures/without-sid.mjs", new_secret(), "withSessionId"),
        (MINIMAL, "too short", "at least 32 bytes"),
        (MINIMAL, "", "a secret is required"),
    ],
)
def test_the_plugin_refuses_a_set_up_that_could_not_revoke(module: str, secret: str, message: str) -> None:
    port = free_port()
    env = clean_env(
        {
            "BA_PORT": str(port),
            "BETTER_AUTH_URL": f"http://127.0.0.1:{port}",
            "BETTER_AUTH_SECRET": new_secret(),
            "BA_REVOCATION_SECRET": secret,
        }
    )
    argv = ["node", "test-fixtures/serve.mjs", module]
    done = subprocess.run(argv, cwd=ISSUER_DIR, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert message in done.stderr
