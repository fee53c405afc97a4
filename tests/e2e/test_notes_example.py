"""The notes example (examples/notes/): an upstream that is not the task service, behind a real gateway
process with the example's policy file and HS256 tokens carrying `org_ids` and `role`.

It verifies the assertion with the shared one-line dependency (taskgate_assertion.fastapi), so this is the
verifier on another app: members read, owners and admins write, outsiders get the gateway's 403, the public
route needs no token, and nothing reaches the app around the gateway.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.support.assertions import gateway_assertion
from tests.support.processes import REPO_ROOT
from tests.support.services import Service, new_secret, running_gateway, running_notes

POLICY = REPO_ROOT / "examples" / "notes" / "policy.yaml"
USER_SECRET = new_secret()
INTERNAL = new_secret()
REFUSED = {"detail": "missing or invalid gateway assertion"}


@dataclass
class Stack:
    gateway: Service
    notes: Service


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work: Path = tmp_path_factory.mktemp("notes")
    with running_notes(work, INTERNAL) as notes:
        policy = work / "policy.yaml"
        policy.write_text(POLICY.read_text().replace('"http://127.0.0.1:9000"', f'"{notes.url}"'))
        settings = {"GATEWAY_JWT_SECRET": USER_SECRET}
        with running_gateway(work, notes.url, INTERNAL, settings, policy_file=policy) as gateway:
            yield Stack(gateway, notes)


def token(sub: str = "alice", **claims: Any) -> dict[str, str]:
    now = int(time.time())
    signed = jwt.encode({"sub": sub, "iat": now, "exp": now + 600, **claims}, USER_SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {signed}"}


def test_the_public_route_needs_no_token(stack: Stack) -> None:
    response = httpx.get(f"{stack.gateway.url}/status", timeout=5)
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_owners_and_admins_write_members_read(stack: Stack) -> None:
    url = f"{stack.gateway.url}/orgs/acme/notes"
    admin = token("alice", org_ids=["acme", "globex"], role="admin")
    added = httpx.post(url, json={"text": "ship it"}, headers=admin, timeout=5)
    assert added.status_code == 201, added.text
    assert added.json() == {"text": "ship it", "author": "alice", "role": "admin"}

    viewer = token("bob", org_ids=["acme"], role="viewer")
    listing = httpx.get(url, headers=viewer, timeout=5)
    assert listing.status_code == 200
    assert [note["text"] for note in listing.json()] == ["ship it"]
    refused = httpx.post(url, json={"text": "mine"}, headers=viewer, timeout=5)
    assert (refused.status_code, refused.json()) == (
        403,
        {"detail": "only an owner or admin of the organisation may add notes"},
    )
    # A client's own X-Org-Role never reaches the app: the role is the token's.
    spoofed = httpx.post(url, json={"text": "mine"}, headers={**viewer, "X-Org-Role": "owner"}, timeout=5)
    assert spoofed.status_code == 403
    no_role = httpx.post(url, json={"text": "mine"}, headers=token("carol", org_ids=["acme"]), timeout=5)
    assert no_role.status_code == 403
    assert [note["text"] for note in httpx.get(url, headers=viewer, timeout=5).json()] == ["ship it"]


def test_outsiders_get_the_gateways_403_and_no_token_a_401(stack: Stack) -> None:
    url = f"{stack.gateway.url}/orgs/acme/notes"
    outsider = httpx.get(url, headers=token("eve", org_ids=["globex"], role="owner"), timeout=5)
    assert outsider.status_code == 403
    assert set(outsider.json()) == {"detail"}
    anonymous = httpx.get(url, timeout=5)
    assert anonymous.status_code == 401


def _signed(
    audience: str, method: str, target: str, body: bytes, user: str | None = "alice", role: str = "owner"
) -> dict[str, str]:
    """Headers as the gateway sends them on the notes route: the assertion binds the X-Org-Role it copied."""
    signed = gateway_assertion(
        INTERNAL.encode(), audience, method, target, body, user=user, claim_headers={"x-org-role": role}
    )
    return {"X-Gateway-Assertion": signed, "Content-Type": "application/json", "X-Org-Role": role}


def test_around_the_gateway_the_app_refuses_everything_but_a_fresh_assertion_for_itself(stack: Stack) -> None:
    url, target, body = f"{stack.notes.url}/orgs/acme/notes", "/orgs/acme/notes", b'{"text":"direct"}'

    def post(headers: dict[str, str], content: bytes = body) -> httpx.Response:
        return httpx.post(url, content=content, headers=headers, timeout=5)

    assert (post({}).status_code, post({}).json()) == (401, REFUSED)  # a direct call
    assert post({"X-User-Id": "alice", "X-Org-Role": "owner"}).status_code == 401  # identity headers alone
    for_the_task_service = _signed("task-service", "POST", target, body)
    assert (post(for_the_task_service).status_code, post(for_the_task_service).json()) == (401, REFUSED)
    assert post(_signed("notes", "POST", target, body, user=None)).status_code == 401  # no user: gateway.user
    forged = {**_signed("notes", "POST", target, body), "X-Gateway-Assertion": "a.b.c"}
    assert post(forged).status_code == 401

    promoted = {**_signed("notes", "POST", target, body, role="viewer"), "X-Org-Role": "owner"}
    assert (post(promoted).status_code, post(promoted).json()) == (401, REFUSED)  # the role changed on the way

    genuine = _signed("notes", "POST", target, body)
    assert post(genuine, b'{"text":"planted"}').status_code == 401  # another body
    accepted = post(genuine)
    assert accepted.status_code == 201 and accepted.json()["text"] == "direct"
    assert (post(genuine).status_code, post(genuine).json()) == (401, REFUSED)  # replayed


def test_the_public_route_takes_an_assertion_without_a_user_but_not_none(stack: Stack) -> None:
    url = f"{stack.notes.url}/status"
    assert httpx.get(url, timeout=5).status_code == 401
    assert httpx.get(url, headers=_signed("notes", "GET", "/status", b"", user=None), timeout=5).status_code == 200
