"""End to end: the real task service and the real gateway as separate processes, HS256 tokens for two users.

Every request goes over loopback sockets exactly as in production; the assertions check what each user can and
cannot see, and that the task service refuses anything that did not pass the gateway.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import jwt

from tests.e2e.conftest import System
from tests.support.processes import free_port
from tests.support.services import new_secret, running_gateway


def test_crud_through_the_gateway(system: System) -> None:
    with system.client("alice") as alice:
        created = alice.post("/api/alice/tasks", json={"title": "  Write report ", "description": "Q3"})
        assert created.status_code == 201
        task = created.json()
        assert task["title"] == "Write report" and task["user_id"] == "alice" and task["completed"] is False
        assert created.headers["Location"].endswith(f"/api/alice/tasks/{task['id']}")
        url = f"/api/alice/tasks/{task['id']}"
        assert alice.get(url).json()["description"] == "Q3"
        replaced = alice.put(url, json={"title": "Final report", "description": None, "completed": False})
        assert replaced.status_code == 200 and replaced.json()["description"] is None
        patched = alice.patch(url, json={"description": "due Friday"})
        assert patched.json()["title"] == "Final report" and patched.json()["description"] == "due Friday"
        done = alice.patch(f"{url}/complete")
        assert done.status_code == 200 and done.json()["completed"] is True
        listed = alice.get("/api/alice/tasks", params={"status": "completed", "q": "FINAL"})
        assert [t["id"] for t in listed.json()] == [task["id"]]
        assert listed.headers["X-Total-Count"] == "1"
        assert alice.post("/api/alice/tasks", json={"title": " "}).status_code == 422
        assert alice.delete(url).status_code == 204
        assert alice.get(url).status_code == 404


def test_an_edit_form_put_keeps_what_it_does_not_send(system: System) -> None:
    """A frontend's edit form sends `PUT {title, description}`: the task stays completed."""
    with system.client("alice") as alice:
        task = alice.post("/api/alice/tasks", json={"title": "done", "description": "d", "completed": True}).json()
        url = f"/api/alice/tasks/{task['id']}"
        edited = alice.put(url, json={"title": "done, renamed", "description": "edited"})
        assert edited.status_code == 200
        assert edited.json()["completed"] is True
        renamed = alice.put(url, json={"title": "renamed again"})
        assert (renamed.json()["description"], renamed.json()["completed"]) == ("edited", True)
        assert alice.get(url).json() == renamed.json()


def test_users_are_isolated_by_every_route(system: System) -> None:
    with system.client("alice") as alice, system.client("bob") as bob:
        task = alice.post("/api/alice/tasks", json={"title": "alice's secret"}).json()
        mine = f"/api/alice/tasks/{task['id']}"
        theirs_under_bob = f"/api/bob/tasks/{task['id']}"
        for method, path in [
            ("GET", "/api/alice/tasks"),
            ("POST", "/api/alice/tasks"),
            ("GET", mine),
            ("PUT", mine),
            ("PATCH", mine),
            ("DELETE", mine),
            ("PATCH", f"{mine}/complete"),
        ]:
            resp = bob.request(method, path, json={"title": "pwned", "completed": True})
            assert resp.status_code == 403, (method, path)
        for method in ("GET", "PUT", "PATCH", "DELETE"):
            resp = bob.request(method, theirs_under_bob, json={"title": "pwned", "completed": True})
            assert resp.status_code == 404, method
        assert bob.patch(f"{theirs_under_bob}/complete").status_code == 404
        spoof = bob.get("/api/alice/tasks", headers={"X-User-Id": "alice", "X-Gateway-Assertion": "x"})
        assert spoof.status_code == 403
        assert bob.get("/api/bob/tasks", params={"q": "secret"}).json() == []
        after = alice.get(mine).json()
        assert after["title"] == "alice's secret" and after["completed"] is False


def test_rejections_at_the_edge(system: System) -> None:
    with system.client(None) as anonymous, system.client("alice") as alice:
        assert anonymous.get("/api/alice/tasks").status_code == 401
        expired = {"Authorization": f"Bearer {system.token('alice', ttl=-300)}"}
        assert anonymous.get("/api/alice/tasks", headers=expired).status_code == 401
        assert alice.get("/api/bob/tasks").status_code == 403
        assert alice.get("/api/alice/tasks/..%2f..%2fbob/tasks").status_code == 400
        assert alice.get("/admin").status_code == 404


def test_service_refuses_direct_calls(system: System) -> None:
    with httpx.Client(base_url=system.service.url, timeout=10) as direct:
        assert direct.get("/api/alice/tasks", headers={"X-User-Id": "alice"}).status_code == 401
        user_token = {"Authorization": f"Bearer {system.token('alice')}"}
        assert direct.get("/api/alice/tasks", headers=user_token).status_code == 401
        forged = jwt.encode(
            {"iss": "taskgate-gateway", "aud": "task-service", "sub": "alice", "mth": "POST",
             "tgt": "/api/alice/tasks", "iat": int(time.time()), "exp": int(time.time()) + 30},
            system.user_secret, algorithm="HS256", headers={"typ": "tg-assertion+jwt"},
        )  # fmt: skip
        resp = direct.post("/api/alice/tasks", json={"title": "x"}, headers={"X-Gateway-Assertion": forged})
        assert resp.status_code == 401
        assert direct.get("/healthz").status_code == 200


def test_logs_never_hold_tokens_or_secrets(system: System) -> None:
    token = system.token("alice")
    with httpx.Client(base_url=system.gateway.url, timeout=10) as client:
        client.get("/api/alice/tasks", headers={"Authorization": f"Bearer {token}"})
        client.get("/api/bob/tasks", headers={"Authorization": f"Bearer {token}"})
        client.get("/api/alice/tasks", headers={"Authorization": f"Bearer {token}x"})
    logs = system.gateway.process.log_text() + system.service.process.log_text()
    for secret in (token, token[-20:], system.user_secret, system.internal_secret):
        assert secret not in logs


def test_access_log_has_one_json_line_per_request(system: System) -> None:
    with system.client("alice") as alice:
        assert alice.get("/api/alice/tasks", headers={"X-Request-Id": "e2e-access-1"}).status_code == 200
    deadline = time.monotonic() + 10
    while '"request_id": "e2e-access-1"' not in system.gateway.process.log_text():
        assert time.monotonic() < deadline, "access line not written"
        time.sleep(0.05)
    [line] = [ln for ln in system.gateway.process.log_text().splitlines() if "e2e-access-1" in ln]
    entry = json.loads(line)
    assert entry["logger"] == "gateway.access" and entry["status"] == 200 and entry["user"] == "alice"
    assert entry["route"] == "/api/{user_id}/tasks" and entry["method"] == "GET"


def test_upstream_down_is_502(tmp_path: Path) -> None:
    user_secret, internal_secret = new_secret(), new_secret()
    dead = f"http://127.0.0.1:{free_port()}"
    with running_gateway(tmp_path, dead, internal_secret, {"GATEWAY_JWT_SECRET": user_secret}) as gateway:
        now = int(time.time())
        token = jwt.encode({"sub": "alice", "exp": now + 60}, user_secret, algorithm="HS256")
        resp = httpx.get(f"{gateway.url}/api/alice/tasks", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert resp.status_code == 502
        assert resp.json() == {"detail": "upstream unavailable"}
        assert httpx.get(f"{gateway.url}/readyz", timeout=10).status_code == 503
