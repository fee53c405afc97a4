"""A frontend of one's own pointed at taskgate, in real headless Chromium (issue 13, point 8).

The page (deploy/better-auth/examples/frontend/) is written the way such frontends are: Better Auth's own
browser client on the page's origin, the fetch wrapper docs/better-auth.md shows (`credentials: "include"`,
`Bearer null` before sign-in, a 401 sends the person to sign-in), `URLSearchParams` for the list query (an empty
filter gives `…/tasks?`), a trailing slash on the collection and `PUT {title, description}` for an edit. It is
bundled with esbuild as a Next.js build would bundle it, and served by the issuer under `/app/`
(`BA_EXTRA_STATIC_DIR`, a testing aid): on Better Auth's own origin, as in a Next.js app, so its session cookie
is the page's. (Playwright's request routing cannot stand in for that server: Chromium then treats the page as
public and refuses its calls to a loopback gateway.)
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Response, expect

from tests.support.better_auth import ISSUER_DIR, PASSWORD
from tests.support.processes import REPO_ROOT, free_port
from tests.support.revocation import refused_within, tasks_status
from tests.support.snippets import marked_lines

from .conftest import ARTIFACTS, Demo, running_stack

FRONTEND = ISSUER_DIR / "examples" / "frontend"
DOC = REPO_ROOT / "docs" / "better-auth.md"
APP_PATH = "/app/"


def test_the_doc_shows_the_wrapper_and_the_calls_the_page_runs() -> None:
    doc = DOC.read_text()
    wrapper = marked_lines(FRONTEND / "api-client.mjs", "own-frontend-client")
    calls = marked_lines(FRONTEND / "app.mjs", "own-frontend-usage")
    assert "authClient.token()" in wrapper
    assert "new URLSearchParams(params)" in calls
    assert f"```js\n{wrapper}\n```" in doc
    assert f"```js\n{calls}\n```" in doc


def build_app(gateway_url: str, out_dir: Path) -> Path:
    """index.html and app.js — app.mjs with api-client.mjs and Better Auth's client bundled into one ES module,
    the gateway URL inlined as a NEXT_PUBLIC_ variable is — in out_dir."""
    shutil.copy(FRONTEND / "index.html", out_dir / "index.html")
    subprocess.run(
        [
            str(ISSUER_DIR / "node_modules" / ".bin" / "esbuild"),
            str(FRONTEND / "app.mjs"),
            "--bundle",
            "--format=esm",
            "--platform=browser",
            f"--define:process.env.NEXT_PUBLIC_TASKGATE_URL={json.dumps(gateway_url)}",
            f"--outfile={out_dir / 'app.js'}",
            "--log-level=warning",
        ],
        cwd=ISSUER_DIR,
        check=True,
        timeout=60,
    )
    return out_dir


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The stack, with the issuer also serving the built page under /app/ (BA_EXTRA_STATIC_DIR)."""
    gateway_port = free_port()
    app_dir = build_app(f"http://127.0.0.1:{gateway_port}", tmp_path_factory.mktemp("app"))
    settings = {"BA_EXTRA_STATIC_DIR": str(app_dir)}
    with running_stack(tmp_path_factory.mktemp("own-frontend"), settings, gateway_port=gateway_port) as demo:
        yield demo


@pytest.fixture
def page(browser: Browser) -> Page:
    return browser.new_page(viewport={"width": 800, "height": 600})


def task(page: Page, title: str) -> Locator:
    return page.get_by_test_id("task").filter(has=page.get_by_test_id("title").get_by_text(title, exact=True))


def tasks_through_gateway(stack: Demo, email: str) -> list[dict[str, object]]:
    """What the service stored, read through the gateway with a token of this person's own."""
    user = stack.issuer.sign_in(email)
    response = httpx.get(
        f"{stack.gateway.url}/api/{user.id}/tasks",
        headers={"Authorization": f"Bearer {stack.issuer.jwt(user)}"},
        timeout=10.0,
    )
    assert response.status_code == 200
    stored: list[dict[str, object]] = response.json()
    return stored


@pytest.mark.slow
def test_a_frontend_of_its_own_works_through_the_gateway(stack: Demo, page: Page) -> None:
    gateway = stack.gateway.url
    seen: list[Response] = []  # the gateway's answers, preflights left out
    page.on(
        "response",
        lambda r: seen.append(r) if r.url.startswith(f"{gateway}/api/") and r.request.method != "OPTIONS" else None,
    )

    def calls() -> list[tuple[str, str, int, str]]:
        """(method, target, status, Authorization) of every gateway call so far, and forget them."""
        found = [
            (r.request.method, r.url.removeprefix(gateway), r.status, r.request.headers.get("authorization", ""))
            for r in seen
        ]
        seen.clear()
        return found

    # Before sign-in: no JWT yet, so "Bearer null"; the gateway's 401 sends the page to its sign-in view.
    page.goto(f"{stack.issuer.origin}{APP_PATH}")
    expect(page.get_by_test_id("sign-in")).to_be_visible()
    expect(page.get_by_test_id("tasks")).to_be_hidden()
    expect(page.get_by_test_id("error")).to_have_text("")
    assert calls() == [("GET", "/api/undefined/tasks?", 401, "Bearer null")]

    # Sign up with Better Auth's client: the next call's 401 fetches a JWT (authClient.token()) and is repeated.
    email = f"grace-{secrets.token_hex(4)}@example.com"
    page.get_by_test_id("email").fill(email)
    page.get_by_test_id("password").fill(PASSWORD)
    page.get_by_test_id("sign-up-button").click()
    expect(page.get_by_test_id("tasks")).to_be_visible()
    expect(page.get_by_test_id("sign-in")).to_be_hidden()
    expect(page.get_by_test_id("task")).to_have_count(0)
    user_id = stack.issuer.sign_in(email).id
    refused, (method, target, status, bearer) = calls()
    assert refused == ("GET", f"/api/{user_id}/tasks?", 401, "Bearer null")
    assert (method, target, status) == ("GET", f"/api/{user_id}/tasks?", 200)  # the empty query
    assert bearer.startswith("Bearer ey")

    # A reload keeps the person signed in (the session is Better Auth's cookie); the JWT held in memory is gone, so
    # the first call renews it again. getSession's answer carries one as well, in `set-auth-jwt`.
    with page.expect_response(lambda r: r.url == f"{stack.issuer.origin}/api/auth/get-session") as got_session:
        page.reload()
    expect(page.get_by_test_id("tasks")).to_be_visible()
    refused, (method, target, status, bearer) = calls()
    assert refused == ("GET", f"/api/{user_id}/tasks?", 401, "Bearer null")
    assert (method, target, status) == ("GET", f"/api/{user_id}/tasks?", 200)
    assert tasks_status(gateway, user_id, got_session.value.headers["set-auth-jwt"]) == 200

    # Add through the trailing-slash collection URL.
    for title in ("Write the report", "Buy milk"):
        page.get_by_test_id("new-title").fill(title)
        page.get_by_test_id("add").click()
        expect(task(page, title)).to_have_count(1)
    added = calls()
    assert [call[:3] for call in added if call[0] == "POST"] == [("POST", f"/api/{user_id}/tasks/", 201)] * 2
    assert {call[3] for call in added} == {bearer}

    # Complete, then edit title and description: the PUT leaves `completed` out and the task stays completed.
    report = task(page, "Write the report")
    report.get_by_test_id("complete").check()
    expect(report).to_have_attribute("data-completed", "true")
    report.get_by_test_id("edit").click()
    page.get_by_test_id("edit-title").fill("Write the final report")
    page.get_by_test_id("edit-description").fill("due Friday")
    with page.expect_request(lambda r: r.method == "PUT") as put:
        page.get_by_test_id("save").click()
    assert json.loads(put.value.post_data or "") == {"title": "Write the final report", "description": "due Friday"}
    final = task(page, "Write the final report")
    expect(final.get_by_test_id("description")).to_have_text("due Friday")
    expect(final).to_have_attribute("data-completed", "true")
    expect(final.get_by_test_id("complete")).to_be_checked()
    stored = {t["title"]: (t["description"], t["completed"]) for t in tasks_through_gateway(stack, email)}
    assert stored == {"Write the final report": ("due Friday", True), "Buy milk": (None, False)}

    # A list query from URLSearchParams with a filter in it.
    calls()
    page.get_by_test_id("status-filter").select_option("completed")
    expect(page.get_by_test_id("task")).to_have_count(1)
    expect(final).to_have_count(1)
    assert calls() == [("GET", f"/api/{user_id}/tasks?status=completed", 200, bearer)]
    page.get_by_test_id("status-filter").select_option("")
    expect(page.get_by_test_id("task")).to_have_count(2)

    # Delete (204) — and the errors a person must be able to read: the service's 422, the gateway's 403.
    task(page, "Buy milk").get_by_test_id("delete").click()
    expect(task(page, "Buy milk")).to_have_count(0)
    page.get_by_test_id("new-title").fill("   ")
    page.get_by_test_id("add").click()
    expect(page.get_by_test_id("error")).to_contain_text("422: [")
    expect(page.get_by_test_id("error")).to_contain_text("title")
    someone_else = stack.issuer.sign_up("ada")
    page.get_by_test_id("other-user").fill(someone_else.id)
    page.get_by_test_id("open-other").click()
    expect(page.get_by_test_id("error")).to_have_text("403: token does not grant access to this resource")
    expect(page.get_by_test_id("tasks")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "own-frontend.png"), full_page=True)
    assert [t["title"] for t in tasks_through_gateway(stack, email)] == ["Write the final report"]

    # Sessions ended elsewhere: once the gateway refuses the JWT the page holds, its next call is a 401, the
    # renewal finds no session, and the person is at sign-in.
    stack.issuer.revoke_sessions(stack.issuer.sign_in(email))
    assert refused_within(gateway, user_id, bearer.removeprefix("Bearer ")) == 401
    calls()
    page.get_by_test_id("status-filter").select_option("pending")
    expect(page.get_by_test_id("sign-in")).to_be_visible()
    expect(page.get_by_test_id("tasks")).to_be_hidden()
    assert calls() == [("GET", f"/api/{user_id}/tasks?status=pending", 401, bearer)]
