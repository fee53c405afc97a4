"""Path confusion against the ownership check: every spelling that a server could read as another user's path,
or read differently from the gateway, is refused before it can reach the upstream.
"""

from __future__ import annotations

import pytest

from tests.gateway_fixtures import make_token
from tests.security.conftest import EdgeFactory
from tests.security.wire import WireUpstream, exchange

TOKEN = make_token("alice")

CONFUSED = {
    # target (raw bytes on the request line) → status
    b"/api/alice/../bob/tasks": 400,
    b"/api/bob/tasks/../../alice/tasks": 400,
    b"/api/alice/./tasks": 400,
    b"/api/alice/%2e%2e/bob/tasks": 400,
    b"/api/alice/%2E%2E/bob/tasks": 400,
    b"/api/alice/.%2e/bob/tasks": 400,
    b"/api/alice%2fbob/tasks": 400,
    b"/api/alice%2Fbob/tasks": 400,
    b"/api/alice%5cbob/tasks": 400,
    b"/api/alice\\..\\bob/tasks": 400,
    b"/api/alice%252e%252e/bob/tasks": 400,
    b"/api/alice%252fbob/tasks": 400,
    b"/api/%61lice/tasks": 400,
    b"/api//alice/tasks": 400,
    b"/api/alice//tasks": 400,
    b"/api/alice/tasks/": 400,
    b"/api/alice/tasks//1": 400,
    b"/api/alice;bob/tasks": 400,
    b"/api/alice/tasks;/1": 400,
    b"/api/alice/tasks/1;jsessionid=x": 400,
    b"/api/alice/tasks#/../../bob/tasks": 400,
    b"/api/alice/tasks%23": 400,
    b"/api/alice/tasks%00": 400,
    b"/api/alice/tasks%": 400,
    b"/api/alice/tasks%2": 400,
    b"/api/alice/tasks%zz": 400,
    b"/api/alice/tasks?q=%zz": 400,
    b"/api/alice/tasks?q=%": 400,
    b"/api/alice/tasks?": 400,
    b"/api/alice/tasks?q=a#frag": 400,
    b"//evil.example/api/alice/tasks": 400,
    b"http://evil.example/api/alice/tasks": 400,
    b"http://gateway.test/api/alice/tasks": 400,
    b"/api/al\xc3\xafce/tasks": 400,
    b"/api/\xd0\xb0lice/tasks": 400,
    b"/api/alice\xef\xbc\x8fbob/tasks": 400,
    b"/api/alice/tasks?q=\xff": 400,
    b"/API/alice/tasks": 404,
    b"/api/alice/Tasks": 404,
    b"/api/alice/tasks/01": 404,
    b"/api/alice/tasks/-1": 404,
    b"/api/alice/tasks/1/complete/": 400,
    b"/api/Alice/tasks": 403,
    b"/api/alice_/tasks": 403,
    b"/api/alice-/tasks": 403,
    b"/api/alic/tasks": 403,
    b"/api/bob/tasks": 403,
    b"/api/" + b"a" * 129 + b"/tasks": 404,
}


@pytest.mark.parametrize("target", list(CONFUSED), ids=[t.decode("latin-1") for t in CONFUSED])
async def test_confusable_targets_never_reach_upstream(edge: EdgeFactory, wire: WireUpstream, target: bytes) -> None:
    gw = await edge(upstream_url=wire.url)
    head = b"GET " + target + b" HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer " + TOKEN.encode()
    ex = await exchange(gw.port, head + b"\r\nConnection: close\r\n\r\n")
    assert ex.status == CONFUSED[target], ex.data[:300]
    assert wire.seen == []


@pytest.mark.parametrize(
    "target",
    ["/api/alice/tasks", "/api/alice/tasks/9", "/api/alice/tasks?q=a%2Fb%2e%2E&status=all", "/api/alice/tasks?a=1?b"],
)
async def test_accepted_targets_are_forwarded_byte_for_byte(edge: EdgeFactory, wire: WireUpstream, target: str) -> None:
    gw = await edge(upstream_url=wire.url)
    head = f"GET {target} HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    ex = await exchange(gw.port, head.encode())
    assert ex.status == 200
    assert [s.request_line for s in wire.seen] == [f"GET {target} HTTP/1.1"]
