"""What the HTTP layer does with requests it cannot read: JSON 400/431, nothing echoed or logged, nothing forwarded.

aiohttp's own error page quotes the offending request line (an Authorization header included) and names the
server version; gateway.http.client_connection answers it. Also here: the C-parser start-up check, protocol upgrades,
header limits, CR/LF/NUL injection and Host abuse.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from aiohttp import http, http_parser

from gateway import server
from gateway.http import client_connection as protocol
from gateway.pipeline import Pipeline
from gateway.settings import ConfigError
from tests.gateway_fixtures import INTERNAL_SECRET, JWT_SECRET, make_token
from tests.security.conftest import EdgeFactory
from tests.security.wire import WireUpstream, assert_not_echoed, exchange, request

TOKEN = make_token("alice")
AUTH = f"Authorization: Bearer {TOKEN}"
GET = "GET /api/alice/tasks HTTP/1.1\r\nHost: x\r\n"

# Each puts the token into the very line the parser refuses, so an echoing error page would quote it.
UNREADABLE = {
    "bare LF line endings": f"GET /api/alice/tasks HTTP/1.1\nHost: x\nAuthorization: Bearer {TOKEN}\n\n",
    "space inside a header name": GET + f"Authoriz ation: Bearer {TOKEN}\r\n\r\n",
    "space before the colon": GET + f"Authorization : Bearer {TOKEN}\r\n\r\n",
    "control byte after the token": GET + f"Authorization: Bearer {TOKEN}\x01\r\n\r\n",
    "NUL in the token": GET + f"Authorization: Bearer {TOKEN}\x00x\r\n\r\n",
    "bare CR in the token": GET + f"Authorization: Bearer {TOKEN}\rX-A: b\r\n\r\n",
    "obs-fold after the token": GET + f"Authorization: Bearer {TOKEN}\r\n x\r\n\r\n",
    "token in the request line": f"GET /api/alice/tasks?{TOKEN} HTTP/1.1 {TOKEN}\r\nHost: x\r\n\r\n",
    "lower-case method": f"get /api/alice/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n",
    "missing Host": f"GET /api/alice/tasks HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n",
    "two Host headers": f"GET /api/alice/tasks HTTP/1.1\r\nHost: a\r\nHost: b\r\nAuthorization: Bearer {TOKEN}\r\n\r\n",
    "HTTP/2 preface": "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "TLS hello": "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
}


@pytest.mark.parametrize("name", list(UNREADABLE))
async def test_unreadable_requests_get_a_json_400_that_echoes_nothing(
    edge: EdgeFactory, wire: WireUpstream, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    gw = await edge(upstream_url=wire.url)
    with caplog.at_level(logging.DEBUG):
        ex = await exchange(gw.port, UNREADABLE[name].encode("latin-1"))
    [answer] = ex.responses
    assert answer.status == 400
    assert answer.header("Content-Type") == ["application/json"]
    assert json.loads(answer.body) == {"detail": "malformed HTTP request"}
    assert answer.header("Server") == ["taskgate"]
    assert ex.closed
    assert_not_echoed(ex.data, TOKEN)
    assert_not_echoed(caplog.text.encode(), TOKEN)
    assert wire.seen == [] and wire.stray == []


@pytest.mark.parametrize(
    "head",
    [
        f"Authorization: Bearer {TOKEN}{'A' * 9000}",
        f"Authorization: Bearer {TOKEN}\r\nX-Pad: {'p' * 8200}",
        f"{'X' * 8200}: {TOKEN}",
    ],
    ids=["oversize Authorization", "oversize other header", "oversize header name"],
)
async def test_oversize_header_fields_are_431_without_echo(
    edge: EdgeFactory, wire: WireUpstream, caplog: pytest.LogCaptureFixture, head: str
) -> None:
    gw = await edge(upstream_url=wire.url)
    with caplog.at_level(logging.DEBUG):
        ex = await exchange(gw.port, f"GET /api/alice/tasks HTTP/1.1\r\nHost: x\r\n{head}\r\n\r\n".encode())
    [answer] = ex.responses
    assert answer.status == 431
    assert json.loads(answer.body) == {"detail": "request header fields too large"}
    assert_not_echoed(ex.data + caplog.text.encode(), TOKEN)
    assert wire.seen == []


async def test_too_many_headers_are_refused(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url)
    many = [f"X-H{i}: v" for i in range(protocol.MAX_HEADERS + 1)]
    ex = await exchange(gw.port, request("GET", "/api/alice/tasks", *many, token=TOKEN))
    assert ex.status == 400 and json.loads(ex.responses[0].body)["detail"] == "malformed HTTP request"
    assert wire.seen == []
    # one header fewer than the limit is still a normal request
    ex = await exchange(gw.port, request("GET", "/api/alice/tasks", *many[: protocol.MAX_HEADERS - 3], token=TOKEN))
    assert ex.status == 200 and len(wire.seen) == 1


@pytest.mark.parametrize("line", ["CONNECT 127.0.0.1:22 HTTP/1.1", "OPTIONS * HTTP/1.1", "GET * HTTP/1.1"])
async def test_non_path_targets_get_the_json_shape(edge: EdgeFactory, wire: WireUpstream, line: str) -> None:
    gw = await edge(upstream_url=wire.url)
    ex = await exchange(
        gw.port, f"{line}\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n".encode()
    )
    [answer] = ex.responses
    assert answer.status == (403 if line.startswith("OPTIONS") else 400)  # OPTIONS: not a CORS preflight
    assert answer.header("Content-Type") == ["application/json"] and "detail" in json.loads(answer.body)
    assert answer.header("Server") == ["taskgate"]
    assert wire.seen == []


@pytest.mark.parametrize(
    "line", ["GET /api/alice/tasks", "GET /api/alice/tasks HTTP/2.0", "GET /api/alice/tasks HTTP/1.2"]
)
async def test_only_http_1_0_and_1_1_are_served(edge: EdgeFactory, wire: WireUpstream, line: str) -> None:
    gw = await edge(upstream_url=wire.url)
    ex = await exchange(gw.port, f"{line}\r\nHost: x\r\n{AUTH}\r\nConnection: close\r\n\r\n".encode())
    assert ex.responses[0].status == 400
    assert wire.seen == []


@pytest.mark.parametrize(
    "extra",
    [
        (
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ),
        ("Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAAQAAP__"),
    ],
    ids=["websocket", "h2c"],
)
async def test_upgrade_attempts_never_switch_protocols(
    edge: EdgeFactory, wire: WireUpstream, extra: tuple[str, ...]
) -> None:
    gw = await edge(upstream_url=wire.url)
    after = request("GET", "/api/bob/tasks", token=TOKEN)
    ex = await exchange(gw.port, request("GET", "/api/alice/tasks", *extra, token=TOKEN, close=False) + after)
    # answered as plain HTTP, then the connection ends: the bytes after the head are never parsed or forwarded
    assert [r.status for r in ex.responses] == [200] and ex.closed
    assert len(wire.seen) == 1
    seen = wire.seen[0]
    for name in ("Upgrade", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "HTTP2-Settings"):
        assert seen.header(name) == []
    assert "upgrade" not in ",".join(seen.header("Connection")).lower()


async def test_upgrade_with_a_body_forwards_only_the_framed_body(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url)
    smuggled = request("DELETE", "/api/alice/tasks/1", token=TOKEN)
    ex = await exchange(
        gw.port,
        request(
            "POST",
            "/api/alice/tasks",
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Content-Length: 2",
            token=TOKEN,
            close=False,
            body=b"{}",
        )
        + smuggled,
    )
    assert [r.status for r in ex.responses] == [200] and ex.closed
    assert [(s.request_line, s.body) for s in wire.seen] == [("POST /api/alice/tasks HTTP/1.1", b"{}")]


@pytest.mark.parametrize(
    "host",
    ["evil.example", "127.0.0.1:1", "localhost", "gateway.test@evil.example", "[::1]:80", "a" * 300],
)
async def test_host_header_never_reaches_or_steers_the_upstream(
    edge: EdgeFactory, wire: WireUpstream, host: str
) -> None:
    gw = await edge(upstream_url=wire.url)
    ex = await exchange(
        gw.port,
        f"GET /api/alice/tasks HTTP/1.1\r\nHost: {host}\r\n{AUTH}\r\nConnection: close\r\n\r\n".encode(),
    )
    assert ex.status == 200
    [seen] = wire.seen
    assert seen.header("Host") == [f"127.0.0.1:{wire.port}"]
    assert host not in seen.head.decode("latin-1").replace(f"127.0.0.1:{wire.port}", "")


@pytest.mark.parametrize(
    "target",
    [
        "/api/alice/tasks\r\nX-User-Id: bob",
        "/api/alice/tasks%0d%0aX-User-Id:%20bob",
        "/api/alice/tasks\x00",
        "/api/alice/tasks?q=\r\nX: y",
    ],
)
async def test_injection_in_the_target_is_refused(edge: EdgeFactory, wire: WireUpstream, target: str) -> None:
    gw = await edge(upstream_url=wire.url)
    ex = await exchange(gw.port, request("GET", target, token=TOKEN))
    assert ex.responses[0].status == 400
    assert wire.seen == []


def test_the_c_parser_is_in_use_and_checked() -> None:
    assert http.HttpRequestParser.__module__ == server.C_PARSER_MODULE
    server.ensure_c_parser()


def test_start_up_refuses_the_pure_python_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "HttpRequestParser", http_parser.HttpRequestParserPy)
    with pytest.raises(ConfigError, match="C HTTP parser"):
        server.ensure_c_parser()


def test_gateway_process_exits_without_the_c_parser() -> None:
    env = {
        "AIOHTTP_NO_EXTENSIONS": "1",
        "GATEWAY_JWT_SECRET": JWT_SECRET,
        "GATEWAY_INTERNAL_SECRET": INTERNAL_SECRET,
        "GATEWAY_PORT": "0",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run([sys.executable, "-m", "gateway"], env=env, capture_output=True, timeout=30, check=False)
    assert done.returncode == 2
    assert b"C HTTP parser is not in use" in done.stderr


async def test_an_unexpected_failure_is_a_bare_json_500(
    edge: EdgeFactory, wire: WireUpstream, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug on the request path shows neither its message nor a traceback, to the client or in the logs."""

    async def broken(*_args: object) -> None:
        raise RuntimeError(f"bug holding {TOKEN}")

    monkeypatch.setattr(Pipeline, "_forward", broken)
    gw = await edge(upstream_url=wire.url)
    with caplog.at_level(logging.DEBUG):
        ex = await exchange(gw.port, request("GET", "/api/alice/tasks", token=TOKEN))
    [answer] = ex.responses
    assert answer.status == 500 and json.loads(answer.body) == {"detail": "internal error"}
    assert b"Traceback" not in ex.data
    assert_not_echoed(ex.data + caplog.text.encode(), TOKEN)
    assert wire.seen == []
