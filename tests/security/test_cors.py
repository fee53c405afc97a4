"""CORS: only an exact allowed origin is ever named; a preflight is never forwarded and never a way in.

For the allowed origin a preflight says yes to any target, method and header names, with credentials: none of it
is an authorisation, which the real request still gets in full.
"""

from __future__ import annotations

import pytest

from tests.gateway_fixtures import Recorder, make_token
from tests.security.conftest import EdgeFactory
from tests.security.wire import exchange, request

ALLOWED = "http://app.example"
TOKEN = make_token("alice")


@pytest.mark.parametrize(
    "origins",
    [
        ("http://app.example/",),
        ("http://app.example:80",),
        ("https://app.example",),
        ("http://APP.example",),
        ("http://app.example.evil.example",),
        ("http://evilapp.example",),
        ("http://app.examplé",),
        ("http://xn--app-example",),
        ("null",),
        ("*",),
        ("",),
        ("http://app.example, http://evil.example",),
        (ALLOWED, "http://evil.example"),
        (ALLOWED, ALLOWED),
    ],
)
async def test_look_alike_and_ambiguous_origins_get_no_cors_headers(
    edge: EdgeFactory, recorder: Recorder, origins: tuple[str, ...]
) -> None:
    gw = await edge()
    lines = [f"Origin: {o}" for o in origins]
    preflight = await exchange(
        gw.port, request("OPTIONS", "/api/alice/tasks", *lines, "Access-Control-Request-Method: GET")
    )
    actual = await exchange(gw.port, request("GET", "/api/alice/tasks", *lines, token=TOKEN))
    assert preflight.status == 403 and actual.status == 200
    for answer in (preflight.responses[0], actual.responses[0]):
        assert answer.header("Access-Control-Allow-Origin") == []
        assert answer.header("Access-Control-Allow-Credentials") == []
        assert answer.header("Vary") == ["Origin"]
    assert len(recorder.received) == 1  # only the actual request, which still needed its token


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "delete", "OPTIONS", "HEAD", "PROPFIND"])
async def test_a_preflight_for_a_method_the_api_lacks_lets_the_real_405_through(
    edge: EdgeFactory, recorder: Recorder, method: str
) -> None:
    """Allowing the method to be *sent* grants nothing: the real request meets the route's method check."""
    gw = await edge()
    ex = await exchange(
        gw.port,
        request("OPTIONS", "/api/alice/tasks", f"Origin: {ALLOWED}", f"Access-Control-Request-Method: {method}"),
    )
    assert ex.status == 204
    assert method in [m.strip() for m in ex.responses[0].header("Access-Control-Allow-Methods")[0].split(",")]
    # (CONNECT takes no path, OPTIONS is the preflight itself, and llhttp refuses a lower-case method as HTTP —
    # fetch() upper-cases `delete` before sending it)
    if method in ("TRACE", "HEAD", "PROPFIND"):
        real = await exchange(gw.port, request(method, "/api/alice/tasks", f"Origin: {ALLOWED}", token=TOKEN))
        assert real.status == 405 and real.responses[0].header("Access-Control-Allow-Origin") == [ALLOWED]
    assert recorder.received == []


@pytest.mark.parametrize(
    "lines",
    [
        ("Access-Control-Request-Method: GET, DELETE",),
        ("Access-Control-Request-Method: ",),
        ("Access-Control-Request-Method: GET", "Access-Control-Request-Method: PUT"),
        ("Access-Control-Request-Method: GET", "Access-Control-Request-Headers: x-a, x b"),
        ("Access-Control-Request-Method: GET", "Access-Control-Request-Headers: x-a, x(b)"),
        ("Access-Control-Request-Method: GET", "Access-Control-Request-Headers: caf\xe9"),
    ],
    ids=["method list", "empty method", "two methods", "space in a name", "separator in a name", "non-ASCII name"],
)
async def test_a_preflight_that_no_browser_would_send_is_refused_and_nothing_is_echoed(
    edge: EdgeFactory, recorder: Recorder, lines: tuple[str, ...]
) -> None:
    gw = await edge()
    ex = await exchange(gw.port, request("OPTIONS", "/api/alice/tasks", f"Origin: {ALLOWED}", *lines))
    [answer] = ex.responses
    assert answer.status == 403
    assert answer.header("Access-Control-Allow-Methods") == answer.header("Access-Control-Allow-Headers") == []
    assert recorder.received == []


async def test_a_preflight_is_answered_at_the_gateway_without_a_token(edge: EdgeFactory, recorder: Recorder) -> None:
    gw = await edge()
    lines = (
        f"Origin: {ALLOWED}",
        "Access-Control-Request-Method: DELETE",
        "Access-Control-Request-Headers: authorization, if-match",
        "Authorization: Bearer not.a.token",
        "X-HTTP-Method-Override: DELETE",
        "Content-Length: 2",
    )
    ex = await exchange(gw.port, request("OPTIONS", "/api/bob/tasks/1", *lines, body=b"{}"))
    [answer] = ex.responses
    assert answer.status == 204
    assert answer.header("Access-Control-Allow-Origin") == [ALLOWED]
    assert answer.header("Access-Control-Allow-Credentials") == ["true"]  # the gateway reads no cookie: grants nothing
    assert answer.header("Access-Control-Allow-Headers") == ["authorization, if-match"]
    assert recorder.received == []


async def test_options_without_a_preflight_request_method_is_no_bypass(edge: EdgeFactory, recorder: Recorder) -> None:
    gw = await edge()
    for lines in ((f"Origin: {ALLOWED}",), (), (f"Origin: {ALLOWED}", "X-HTTP-Method-Override: GET")):
        ex = await exchange(gw.port, request("OPTIONS", "/api/alice/tasks", *lines, token=TOKEN))
        assert ex.status == 403
    # a real preflight is answered for any target, and is still never forwarded
    for target in ("/admin", "/api/bob/tasks", "/api/alice/../bob/tasks"):
        ex = await exchange(
            gw.port, request("OPTIONS", target, f"Origin: {ALLOWED}", "Access-Control-Request-Method: GET", token=TOKEN)
        )
        assert ex.status == 204
    assert recorder.received == []


async def test_without_configured_origins_no_cors_header_is_ever_sent(edge: EdgeFactory, recorder: Recorder) -> None:
    gw = await edge(cors_origins=())
    preflight = await exchange(
        gw.port, request("OPTIONS", "/api/alice/tasks", f"Origin: {ALLOWED}", "Access-Control-Request-Method: GET")
    )
    actual = await exchange(gw.port, request("GET", "/api/alice/tasks", f"Origin: {ALLOWED}", token=TOKEN))
    assert preflight.status == 403 and actual.status == 200
    for answer in (preflight.responses[0], actual.responses[0]):
        assert not [k for k, _ in answer.headers if k.lower().startswith("access-control-")]
