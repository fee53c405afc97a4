"""Path confusion against the ownership check: every spelling that a server could read as another user's path,
or read differently from the gateway, is refused before it can reach the upstream. The two spellings accepted
in canonical form (an empty query, one trailing slash) are owned exactly as the canonical route is.
"""

from __future__ import annotations

import jwt
import pytest

from tests.gateway_fixtures import INTERNAL_SECRET, make_token
from tests.security.conftest import EdgeFactory
from tests.security.wire import WireUpstream, exchange, request

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
    b"/api/alice/tasks//": 400,
    b"/api/alice/tasks//1": 400,
    b"/api/alice/tasks/1//": 400,
    b"/api/alice/tasks/./": 400,
    b"/api/alice/tasks/../": 400,
    b"/api/alice/tasks/1/../": 400,
    b"/api/bob/tasks/../../alice/tasks/": 400,
    b"/api/alice/tasks/%2f": 400,
    b"/api/alice/tasks%2f": 400,
    b"/api/alice/tasks/;": 400,
    b"/api/alice/tasks/?q=%zz": 400,
    b"/api/alice/tasks/?access_token=x": 400,
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
    b"/api/alice/": 404,
    b"/api/alice/tasks/01/": 404,
    b"/API/alice/tasks/": 404,
    b"/api/Alice/tasks": 403,
    b"/api/alice_/tasks": 403,
    b"/api/alice-/tasks": 403,
    b"/api/alic/tasks": 403,
    b"/api/bob/tasks": 403,
    # the canonical spellings (empty query, one trailing slash) of another user's routes
    b"/api/bob/tasks?": 403,
    b"/api/bob/tasks/": 403,
    b"/api/bob/tasks/?": 403,
    b"/api/bob/tasks/?status=all": 403,
    b"/api/bob/tasks/1/": 403,
    b"/api/bob/tasks/1?": 403,
    b"/api/bob/tasks/1/complete/": 405,
    b"/api/Alice/tasks/": 403,
    b"/api/alice_/tasks/1/": 403,
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
    ("target", "forwarded"),
    [
        ("/api/alice/tasks", "/api/alice/tasks"),
        ("/api/alice/tasks/9", "/api/alice/tasks/9"),
        ("/api/alice/tasks?q=a%2Fb%2e%2E&status=all", "/api/alice/tasks?q=a%2Fb%2e%2E&status=all"),
        ("/api/alice/tasks?a=1?b", "/api/alice/tasks?a=1?b"),
        # canonical forms: an empty query is no query, one trailing slash is the route without it
        ("/api/alice/tasks?", "/api/alice/tasks"),
        ("/api/alice/tasks/", "/api/alice/tasks"),
        ("/api/alice/tasks/?", "/api/alice/tasks"),
        ("/api/alice/tasks/9/?q=a/", "/api/alice/tasks/9?q=a/"),
        ("/api/alice/tasks/9/complete/", "/api/alice/tasks/9/complete"),
        ("/api/alice/tasks/??", "/api/alice/tasks??"),
    ],
)
async def test_accepted_targets_are_forwarded_canonical(
    edge: EdgeFactory, wire: WireUpstream, target: str, forwarded: str
) -> None:
    """Byte for byte, apart from the two canonical forms; the assertion is signed for what is forwarded."""
    gw = await edge(upstream_url=wire.url)
    method = "PATCH" if target.startswith("/api/alice/tasks/9/complete") else "GET"
    ex = await exchange(gw.port, request(method, target, token=TOKEN))
    assert ex.status == 200
    [seen] = wire.seen
    assert seen.request_line == f"{method} {forwarded} HTTP/1.1"
    claims = jwt.decode(
        seen.header("X-Gateway-Assertion")[0], INTERNAL_SECRET, algorithms=["HS256"], audience="task-service"
    )
    assert (claims["tgt"], claims["sub"]) == (forwarded, "alice")
