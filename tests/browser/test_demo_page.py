"""The demo page in real headless Chromium: sign up, manage tasks through the gateway, sign out and in.

Everything is real: the Better Auth issuer serving the page, the gateway verifying its JWKS tokens with
CORS for the page's origin, and the task service. What the page shows is checked against what the service
stored, read back through the gateway with the user's own token.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Request, expect

from tests.support.better_auth import PASSWORD
from tests.support.revocation import refused_within, tasks_status

from .conftest import ARTIFACTS, Demo, running_stack

pytestmark = pytest.mark.slow

SCREENSHOT = ARTIFACTS / "demo-page.png"
# 62 s tokens make the page renew its JWT (at exp - 60 s) about every two seconds during the test.
TOKEN_TTL_S = "62"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with running_stack(tmp_path_factory.mktemp("demo"), {"BA_JWT_TTL_S": TOKEN_TTL_S}) as stack:
        yield stack


def task_item(page: Page, title: str) -> Locator:
    return page.get_by_test_id("task-item").filter(has=page.get_by_test_id("task-title").get_by_text(title, exact=True))


def add_task(page: Page, title: str, description: str = "") -> None:
    page.get_by_test_id("new-task-title").fill(title)
    page.get_by_test_id("new-task-description").fill(description)
    page.get_by_test_id("add-task").click()
    expect(task_item(page, title.strip())).to_have_count(1)


def titles(page: Page) -> list[str]:
    return page.get_by_test_id("task-title").all_inner_texts()


def test_sign_up_and_manage_tasks_in_the_browser(demo: Demo, browser: Browser) -> None:
    page = browser.new_page(viewport={"width": 900, "height": 700})
    gateway_calls: list[Request] = []
    page.on("request", lambda r: gateway_calls.append(r) if r.url.startswith(demo.gateway.url) else None)
    email = "ada@example.com"

    page.goto(demo.issuer.origin)
    expect(page.get_by_test_id("auth-section")).to_be_visible()
    page.get_by_test_id("tab-sign-up").click()
    page.get_by_test_id("auth-name").fill("Ada")
    page.get_by_test_id("auth-email").fill(email)
    page.get_by_test_id("auth-password").fill(PASSWORD)
    page.get_by_test_id("auth-submit").click()
    expect(page.get_by_test_id("tasks-section")).to_be_visible()
    expect(page.get_by_test_id("user-email")).to_have_text(email)
    expect(page.get_by_test_id("empty-state")).to_be_visible()

    add_task(page, "Write the report", "due Friday")
    add_task(page, "Buy milk")
    add_task(page, "Call the plumber", "about the kitchen tap")
    expect(page.get_by_test_id("task-count")).to_have_text("3 tasks")
    assert titles(page) == ["Call the plumber", "Buy milk", "Write the report"]

    task_item(page, "Write the report").get_by_test_id("task-toggle").click()
    expect(task_item(page, "Write the report")).to_have_attribute("data-completed", "true")
    page.get_by_test_id("filter-completed").click()
    expect(page.get_by_test_id("task-item")).to_have_count(1)
    assert titles(page) == ["Write the report"]
    page.get_by_test_id("filter-pending").click()
    expect(page.get_by_test_id("task-count")).to_have_text("2 tasks")
    assert titles(page) == ["Call the plumber", "Buy milk"]
    page.get_by_test_id("filter-all").click()
    page.get_by_test_id("search").fill("MILK")
    expect(page.get_by_test_id("task-item")).to_have_count(1)
    page.get_by_test_id("search").fill("")
    expect(page.get_by_test_id("task-item")).to_have_count(3)

    task_item(page, "Buy milk").get_by_test_id("task-edit").click()
    page.get_by_test_id("edit-title").fill("Buy oat milk")
    page.get_by_test_id("edit-description").fill("two cartons")
    page.get_by_test_id("edit-save").click()
    edited = task_item(page, "Buy oat milk")
    expect(edited.get_by_test_id("task-description")).to_have_text("two cartons")

    task_item(page, "Call the plumber").get_by_test_id("task-delete").click()
    expect(task_item(page, "Call the plumber")).to_have_count(0)

    # A title of spaces passes the form but not the service: the 422 must reach the person.
    page.get_by_test_id("new-task-title").fill("   ")
    page.get_by_test_id("add-task").click()
    expect(page.get_by_test_id("error-banner")).to_be_visible()
    expect(page.get_by_test_id("error-text")).to_contain_text("Gateway: 422")
    expect(page.get_by_test_id("error-text")).to_contain_text("title")
    page.screenshot(path=str(ARTIFACTS / "demo-error.png"))
    page.get_by_test_id("error-dismiss").click()
    expect(page.get_by_test_id("error-banner")).to_be_hidden()
    page.get_by_test_id("new-task-title").fill("")

    # The page renews its JWT on its own timer (exp - 60 s); the calls after that carry the new one.
    first_token = gateway_calls[0].headers["authorization"]
    with page.expect_response(lambda r: r.url.endswith("/api/auth/token") and r.ok, timeout=15_000):
        pass
    with page.expect_request(lambda r: r.url.startswith(demo.gateway.url) and r.method == "GET") as later:
        page.get_by_test_id("filter-all").click()
    assert later.value.headers["authorization"] not in ("", first_token)
    expect(page.get_by_test_id("task-count")).to_have_text("2 tasks")

    page.screenshot(path=str(SCREENSHOT), full_page=True)

    api_calls = [r for r in gateway_calls if r.method != "OPTIONS"]
    assert api_calls
    assert all(r.headers.get("authorization", "").startswith("Bearer ey") for r in api_calls)

    # What the service stored, read through the gateway with this user's own token.
    user = demo.issuer.sign_in(email)
    stored = httpx.get(
        f"{demo.gateway.url}/api/{user.id}/tasks",
        params={"sort": "title"},
        headers={"Authorization": f"Bearer {demo.issuer.jwt(user)}"},
    )
    assert stored.status_code == 200
    assert [(t["title"], t["description"], t["completed"]) for t in stored.json()] == [
        ("Buy oat milk", "two cartons", False),
        ("Write the report", "due Friday", True),
    ]

    # Signing out ends the API access of the JWT the page held, not at its exp but within seconds; the session
    # this test signed in with above is another one and keeps working.
    captured = api_calls[-1].headers["authorization"].removeprefix("Bearer ")
    assert tasks_status(demo.gateway.url, user.id, captured) == 200
    page.get_by_test_id("sign-out").click()
    expect(page.get_by_test_id("auth-section")).to_be_visible()
    assert refused_within(demo.gateway.url, user.id, captured) == 401
    assert tasks_status(demo.gateway.url, user.id, demo.issuer.jwt(user)) == 200
    page.reload()
    expect(page.get_by_test_id("auth-section")).to_be_visible()
    expect(page.get_by_test_id("tasks-section")).to_be_hidden()
    page.screenshot(path=str(ARTIFACTS / "demo-sign-in.png"))
    page.get_by_test_id("auth-email").fill(email)
    page.get_by_test_id("auth-password").fill(PASSWORD)
    page.get_by_test_id("auth-submit").click()
    expect(page.get_by_test_id("task-item")).to_have_count(2)
    expect(task_item(page, "Write the report")).to_have_attribute("data-completed", "true")

    # Sessions ended elsewhere: the next timed renewal fails, and the page says so instead of going quiet.
    demo.issuer.revoke_sessions(user)
    expect(page.get_by_test_id("auth-section")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("error-text")).to_contain_text("401")
    expect(page.get_by_test_id("error-text")).to_contain_text("session has ended")
