"""Upstream trust: the real task service (its own process) refuses every request that did not pass the gateway.

Direct calls, forged assertions, assertions replayed for another method, target, user or body, and a
genuine assertion used a second time all get 401 and change nothing; the count of alice's tasks (read with a
genuine assertion) proves nothing was written.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from gateway.policy.assertion import AssertionSigner
from taskgate_assertion.format import body_digest
from tests.security.wire import exchange
from tests.support.services import Service, new_secret, running_task_service

USER_SECRET = new_secret()
INTERNAL = new_secret()
BODY = b'{"title":"pwned"}'
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    work: Path = tmp_path_factory.mktemp("trust")
    with running_task_service(work, INTERNAL) as svc:
        yield svc


def assertion(
    method: str = "POST",
    target: str = "/api/alice/tasks",
    sub: Any = "alice",
    *,
    secret: str = INTERNAL,
    algorithm: str = "HS256",
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    now = int(time.time())
    payload = {
        "iss": "taskgate-gateway", "aud": "task-service", "sub": sub, "mth": method, "tgt": target,
        "bdy": body_digest(BODY), "iat": now, "exp": now + 10, "jti": secrets.token_urlsafe(16), "rid": "r1",
        **claims,
    }  # fmt: skip
    payload = {k: v for k, v in payload.items() if v is not None}
    key: Any = None if algorithm == "none" else secret
    return jwt.encode(payload, key, algorithm=algorithm, headers=header or {"typ": "tg-assertion+jwt"})


def genuine(method: str, target: str, body: bytes = b"") -> dict[str, str]:
    signed = AssertionSigner(INTERNAL.encode()).sign(
        audience="task-service", method=method, target=target, body=body, user_id="alice", request_id="r"
    )
    return {"X-Gateway-Assertion": signed, "X-User-Id": "alice"}


def task_count(svc: Service) -> int:
    resp = httpx.get(f"{svc.url}/api/alice/tasks", headers=genuine("GET", "/api/alice/tasks"), timeout=5)
    assert resp.status_code == 200
    return int(resp.headers["X-Total-Count"])


# Built when each test runs, not at import: a long suite would otherwise age the time-bound cases (a
# "future-dated" assertion made at collection is no longer in the future two minutes later).
FORGED: dict[str, Callable[[], dict[str, str]]] = {
    "no assertion (direct call)": lambda: {},
    "X-User-Id alone": lambda: {"X-User-Id": "alice"},
    "garbage": lambda: {"X-Gateway-Assertion": "garbage"},
    "alg none": lambda: {"X-Gateway-Assertion": assertion(algorithm="none")},
    "signed with the user-token secret": lambda: {"X-Gateway-Assertion": assertion(secret=USER_SECRET)},
    "HS512 with the internal secret": lambda: {"X-Gateway-Assertion": assertion(algorithm="HS512")},
    "typ missing": lambda: {"X-Gateway-Assertion": assertion(header={"alg": "HS256"})},
    "a user token's typ": lambda: {"X-Gateway-Assertion": assertion(header={"typ": "JWT"})},
    "wrong issuer": lambda: {"X-Gateway-Assertion": assertion(iss="someone-else")},
    "wrong audience": lambda: {"X-Gateway-Assertion": assertion(aud="another-service")},
    "sub empty": lambda: {"X-Gateway-Assertion": assertion(sub="")},
    "sub missing": lambda: {"X-Gateway-Assertion": assertion(sub=None)},
    "replayed for another method": lambda: {"X-Gateway-Assertion": assertion(method="GET")},
    "replayed for another path": lambda: {"X-Gateway-Assertion": assertion(target="/api/alice/tasks/1")},
    "replayed with a query": lambda: {"X-Gateway-Assertion": assertion(target="/api/alice/tasks?status=all")},
    "replayed for another user's path": lambda: {"X-Gateway-Assertion": assertion(target="/api/bob/tasks", sub="bob")},
    "X-User-Id names someone else": lambda: {"X-Gateway-Assertion": assertion(), "X-User-Id": "bob"},
    "expired": lambda: {"X-Gateway-Assertion": assertion(iat=int(time.time()) - 120, exp=int(time.time()) - 60)},
    "future-dated": lambda: {"X-Gateway-Assertion": assertion(iat=int(time.time()) + 120, exp=int(time.time()) + 150)},
    "lifetime over 30 s": lambda: {"X-Gateway-Assertion": assertion(exp=int(time.time()) + 31)},
    "replayed with another body": lambda: {"X-Gateway-Assertion": assertion(bdy=body_digest(b'{"title":"ok"}'))},
    "body digest missing": lambda: {"X-Gateway-Assertion": assertion(bdy=None)},
    "body digest of the empty body": lambda: {"X-Gateway-Assertion": assertion(bdy=body_digest(b""))},
    "jti missing": lambda: {"X-Gateway-Assertion": assertion(jti=None)},
    "jti not a string": lambda: {"X-Gateway-Assertion": assertion(jti=12345)},
    "for another upstream (the notes example)": lambda: {"X-Gateway-Assertion": assertion(aud="notes")},
    "exp as a string": lambda: {"X-Gateway-Assertion": assertion(exp=str(int(time.time()) + 30))},
    "iat missing": lambda: {"X-Gateway-Assertion": assertion(iat=None)},
}


@pytest.mark.parametrize("name", list(FORGED))
def test_forged_or_replayed_assertions_get_401_and_write_nothing(service: Service, name: str) -> None:
    before = task_count(service)
    headers = {**FORGED[name](), **JSON}
    resp = httpx.post(f"{service.url}/api/alice/tasks", content=BODY, headers=headers, timeout=5)
    assert resp.status_code == 401, resp.text
    assert set(resp.json()) == {"detail"}
    assert task_count(service) == before


def test_the_genuine_assertion_is_accepted_once_bound(service: Service) -> None:
    """Control: the same request with a genuine assertion does write, so the refusals above are meaningful."""
    before = task_count(service)
    headers = {**genuine("POST", "/api/alice/tasks", BODY), **JSON}
    resp = httpx.post(f"{service.url}/api/alice/tasks", content=BODY, headers=headers, timeout=5)
    assert resp.status_code == 201
    assert task_count(service) == before + 1


def test_a_genuine_assertion_is_refused_the_second_time(service: Service) -> None:
    """Single use: once accepted, the same assertion is refused with the same body and with any other."""
    headers = {**genuine("POST", "/api/alice/tasks", BODY), **JSON}
    assert httpx.post(f"{service.url}/api/alice/tasks", content=BODY, headers=headers, timeout=5).status_code == 201
    before = task_count(service)
    for body in (BODY, b'{"title":"other"}'):
        resp = httpx.post(f"{service.url}/api/alice/tasks", content=body, headers=headers, timeout=5)
        assert resp.status_code == 401, body
    assert task_count(service) == before


def test_two_assertion_headers_are_401(service: Service) -> None:
    good = genuine("POST", "/api/alice/tasks", BODY)["X-Gateway-Assertion"]
    before = task_count(service)
    resp = httpx.post(
        f"{service.url}/api/alice/tasks",
        content=BODY,
        headers=[("X-Gateway-Assertion", good), ("X-Gateway-Assertion", good), *JSON.items()],
        timeout=5,
    )
    assert resp.status_code == 401
    assert task_count(service) == before


@pytest.mark.parametrize(
    "sent",
    ["/api/%61lice/tasks", "/api/alice/tasks/", "/api/alice/./tasks", "/api//alice/tasks", "/api/alice/tasks?q="],
)
async def test_assertion_is_bound_to_the_raw_target_bytes(service: Service, sent: str) -> None:
    """An assertion for /api/alice/tasks does not cover any other spelling of it, however a server decodes it.

    (A bare trailing '?' is the one spelling the service cannot tell apart: uvicorn reports an empty query for
    both. It names the same resource with the same empty query, and the gateway refuses it before signing.)
    """
    port = int(service.url.rsplit(":", 1)[1])
    headers = genuine("GET", "/api/alice/tasks")
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    ex = await exchange(port, f"GET {sent} HTTP/1.1\r\nHost: x\r\n{lines}Connection: close\r\n\r\n".encode())
    assert ex.status in (401, 404), ex.data[:200]
    assert ex.status != 200
