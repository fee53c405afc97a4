"""Resource exhaustion: slow clients, big or compressed bodies, idle connections, slow or broken upstreams.

Every wait is bounded: a test fails (never hangs) when the gateway does not answer or close within a deadline
several times the configured one. The deadlines are liveness bounds, not measurements.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

import pytest

from tests.gateway_fixtures import make_token
from tests.security.conftest import EdgeFactory
from tests.security.wire import Reply, WireUpstream, exchange, raw_upstream, request
from tests.support.services import new_secret, running_gateway

TOKEN = make_token("alice")
HEAD = f"POST /api/alice/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"


async def test_slow_request_head_gets_408_and_is_closed(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url, header_timeout_s=0.3)
    trickle = [b"GET /api/alice/tasks HTTP/1.1\r\n", *(b"X-Slow: %d\r\n" % i for i in range(100))]
    ex = await exchange(gw.port, *trickle, pause=0.05, timeout=4)
    assert ex.closed
    assert [r.status for r in ex.responses] == [408]
    assert json.loads(ex.responses[0].body) == {"detail": "request header timeout"}
    assert wire.seen == []


async def test_one_byte_then_silence_is_closed_by_the_head_deadline(edge: EdgeFactory) -> None:
    gw = await edge(header_timeout_s=0.3, keepalive_timeout_s=60)
    ex = await exchange(gw.port, b"G", timeout=4)
    assert ex.closed and [r.status for r in ex.responses] == [408]


async def test_a_slow_second_request_on_a_kept_alive_connection_gets_408(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url, header_timeout_s=0.3, keepalive_timeout_s=60)
    first = request("GET", "/api/alice/tasks", token=TOKEN, close=False)
    trickle = [b"GET /api/alice/tasks HTTP/1.1\r\n", *(b"X-Slow: %d\r\n" % i for i in range(100))]
    ex = await exchange(gw.port, first, *trickle, pause=0.05, timeout=4)
    assert ex.closed and [r.status for r in ex.responses] == [200, 408]
    assert len(wire.seen) == 1


async def test_a_head_in_pieces_within_the_deadline_is_served(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url, header_timeout_s=5)
    raw = request("GET", "/api/alice/tasks", token=TOKEN)
    ex = await exchange(gw.port, raw[:10], raw[10:40], raw[40:], pause=0.05)
    assert [r.status for r in ex.responses] == [200] and len(wire.seen) == 1


async def test_slow_request_body_gets_408_and_never_reaches_upstream(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url, body_timeout_s=0.3)
    parts = [(HEAD + "Content-Length: 100\r\n\r\n").encode(), *([b"x"] * 99)]
    ex = await exchange(gw.port, *parts, pause=0.05, timeout=4)
    assert ex.closed
    assert [r.status for r in ex.responses] == [408]
    assert json.loads(ex.responses[0].body) == {"detail": "request body timeout"}
    assert wire.seen == []


async def test_slow_chunked_body_gets_408(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url, body_timeout_s=0.3)
    parts = [(HEAD + "Transfer-Encoding: chunked\r\n\r\n").encode(), *([b"1\r\nx\r\n"] * 99)]
    ex = await exchange(gw.port, *parts, pause=0.05, timeout=4)
    assert ex.closed and [r.status for r in ex.responses] == [408]
    assert wire.seen == []


async def test_idle_connections_are_closed_silently(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url, keepalive_timeout_s=0.3, header_timeout_s=0.2)
    # never sends a byte
    ex = await exchange(gw.port, timeout=4)
    assert ex.closed and ex.data == b""
    # one request, then idle: one answer, then a close with no unsolicited 408
    ex = await exchange(gw.port, request("GET", "/api/alice/tasks", token=TOKEN, close=False), timeout=4)
    assert ex.closed and [r.status for r in ex.responses] == [200]


async def test_huge_declared_body_is_413_without_reading_it(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url)
    ex = await exchange(gw.port, (HEAD + "Content-Length: 1099511627776\r\n\r\n").encode(), timeout=4)
    assert ex.closed and [r.status for r in ex.responses] == [413]
    assert wire.seen == []


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        (("Content-Length: 10",), 401),
        ((f"Authorization: Bearer {TOKEN}", "Content-Length: 1099511627776"), 413),
        ((f"Authorization: Bearer {TOKEN}", "Content-Length: 10", "Content-Encoding: gzip"), 415),
    ],
    ids=["no token", "huge body", "compressed"],
)
async def test_expect_continue_is_not_granted_before_the_checks(
    edge: EdgeFactory, wire: WireUpstream, lines: tuple[str, ...], status: int
) -> None:
    """No `100 Continue` invites a body that will be refused: the refusal comes instead, before any upload."""
    gw = await edge(upstream_url=wire.url)
    ex = await exchange(gw.port, request("POST", "/api/alice/tasks", "Expect: 100-continue", *lines), timeout=4)
    assert [r.status for r in ex.responses] == [status]
    assert b"100 Continue" not in ex.data and wire.seen == []


async def test_expect_continue_is_granted_once_authorised(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url)
    head = request("POST", "/api/alice/tasks", "Expect: 100-continue", "Content-Length: 2", token=TOKEN)
    ex = await exchange(gw.port, head, b"{}", pause=0.2)
    assert [r.status for r in ex.responses] == [100, 200]
    assert [s.body for s in wire.seen] == [b"{}"]
    other = await exchange(
        gw.port, request("POST", "/api/alice/tasks", "Expect: later", "Content-Length: 0", token=TOKEN)
    )
    assert other.status == 417 and len(wire.seen) == 1


async def test_chunked_body_over_the_limit_is_413(edge: EdgeFactory, wire: WireUpstream) -> None:
    gw = await edge(upstream_url=wire.url, max_body_bytes=1024)
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    ex = await exchange(gw.port, (HEAD + "Transfer-Encoding: chunked\r\n\r\n").encode(), chunk, chunk, timeout=4)
    assert [r.status for r in ex.responses] == [413]
    assert wire.seen == []


@pytest.mark.parametrize(
    "headers",
    [
        ("Content-Encoding: gzip",),
        ("Content-Encoding: GZIP",),
        ("Content-Encoding: br",),
        ("Content-Encoding: identity, gzip",),
        ("Content-Encoding: identity", "Content-Encoding: deflate"),
        ("Content-Encoding: x-custom",),
    ],
)
async def test_compressed_request_bodies_are_415(
    edge: EdgeFactory, wire: WireUpstream, headers: tuple[str, ...]
) -> None:
    gw = await edge(upstream_url=wire.url)
    bomb = gzip.compress(b"\0" * 10_000_000)
    ex = await exchange(
        gw.port, request("POST", "/api/alice/tasks", *headers, f"Content-Length: {len(bomb)}", token=TOKEN, body=bomb)
    )
    assert [r.status for r in ex.responses] == [415]
    assert wire.seen == []


async def test_transfer_coding_gzip_is_never_inflated(edge: EdgeFactory, wire: WireUpstream) -> None:
    """A gzip transfer-coding is not decoded by the gateway: the upstream gets the bytes the client sent."""
    gw = await edge(upstream_url=wire.url)
    bomb = gzip.compress(b"\0" * 10_000_000)
    body = b"%x\r\n" % len(bomb) + bomb + b"\r\n0\r\n\r\n"
    ex = await exchange(
        gw.port, (HEAD + "Transfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n").encode() + body
    )
    assert [r.status for r in ex.responses] == [200]
    [seen] = wire.seen
    assert seen.body == bomb and seen.header("Content-Encoding") == []


async def _never(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the gateway gives up and closes


async def _close_at_once(_reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
    return


def _send(data: bytes, then_wait: bool = False) -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        if then_wait:
            await reader.read()

    return reply


UPSTREAM_FAILURES: dict[str, tuple[Reply, int]] = {
    "accepts, never answers": (_never, 504),
    "closes without answering": (_close_at_once, 502),
    "answers garbage": (_send(b"SSH-2.0-OpenSSH_9.6\r\n"), 502),
    "stops inside the head": (_send(b"HTTP/1.1 200 OK\r\nContent-Le", then_wait=True), 504),
    "bad chunking": (_send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), 502),
    "two content lengths": (_send(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"), 502),
}


@pytest.mark.parametrize("name", list(UPSTREAM_FAILURES))
async def test_upstream_failures_are_502_or_504_within_the_budget(edge: EdgeFactory, name: str) -> None:
    reply, status = UPSTREAM_FAILURES[name]
    async with raw_upstream(reply) as url:
        gw = await edge(upstream_url=url, upstream_timeout_s=0.5)
        ex = await exchange(gw.port, request("GET", "/api/alice/tasks", token=TOKEN), timeout=5)
    assert [r.status for r in ex.responses] == [status]
    body = json.loads(ex.responses[0].body)
    assert set(body) == {"detail"} and "Traceback" not in body["detail"]


def _head_then(rest: bytes, *, then_wait: bool) -> Reply:
    """A good head and the start of a body, then (in a later segment) `rest` and a close, or silence."""

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        await writer.drain()
        if rest:
            await asyncio.sleep(0.05)  # the upstream's pace: a second segment, after the head was relayed
            writer.write(rest)
            await writer.drain()
        if then_wait:
            await reader.read()

    return reply


MID_BODY_FAILURES: dict[str, Reply] = {
    "short body, then close": _head_then(b"", then_wait=False),
    "short body, then silence": _head_then(b"", then_wait=True),
}


@pytest.mark.parametrize("name", list(MID_BODY_FAILURES))
async def test_an_upstream_failing_mid_body_never_yields_a_complete_answer(edge: EdgeFactory, name: str) -> None:
    """Once the status is sent, an upstream that breaks off or stalls past its timeout cuts the client
    connection: what the client got is visibly incomplete, never a finished answer."""
    async with raw_upstream(MID_BODY_FAILURES[name]) as url:
        gw = await edge(upstream_url=url, upstream_timeout_s=0.5)
        ex = await exchange(gw.port, request("GET", "/api/alice/tasks", token=TOKEN, close=False), timeout=5)
    assert ex.closed
    head, _, body = ex.data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") or ex.data == b""  # a reset may discard what was not yet read
    assert len(body) < 100 and ex.data.count(b"HTTP/1.1") <= 1


async def test_bytes_past_the_upstream_content_length_never_reach_the_client(edge: EdgeFactory) -> None:
    """An upstream that sends more than it declared: the answer ends at its Content-Length (the rest would be
    read by the client as the start of its next answer)."""
    async with raw_upstream(
        _head_then(b"x" * 95 + b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad", then_wait=True)
    ) as url:
        gw = await edge(upstream_url=url, upstream_timeout_s=0.5)
        ex = await exchange(gw.port, request("GET", "/api/alice/tasks", token=TOKEN), timeout=5)
    [answer] = ex.responses
    assert answer.status == 200 and answer.body == b"short" + b"x" * 95 and ex.closed
    assert b"bad" not in ex.data


async def test_upstream_101_is_not_a_protocol_switch(edge: EdgeFactory) -> None:
    reply = _send(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nraw", True)
    async with raw_upstream(reply) as url:
        gw = await edge(upstream_url=url, upstream_timeout_s=0.5)
        ex = await exchange(gw.port, request("GET", "/api/alice/tasks", token=TOKEN), timeout=5)
    [answer] = ex.responses
    assert answer.status == 502 and json.loads(answer.body) == {"detail": "upstream answered with an unexpected status"}
    assert answer.header("Upgrade") == [] and ex.data.count(b"HTTP/1.1 ") == 1


@pytest.mark.slow
async def test_deadlines_hold_in_the_real_process(tmp_path: Path) -> None:
    """The same deadlines in `python -m gateway` (uvloop, production runner), not only in-process."""
    settings = {
        "GATEWAY_JWT_SECRET": new_secret(),
        "GATEWAY_HEADER_TIMEOUT_S": "0.3",
        "GATEWAY_KEEPALIVE_TIMEOUT_S": "0.5",
    }
    with running_gateway(tmp_path, "http://127.0.0.1:9", new_secret(), settings) as gateway:
        port = int(gateway.url.rsplit(":", 1)[1])
        slow = await exchange(port, b"GET /api/alice/tasks HTTP/1.1\r\n", *([b"X-A: 1\r\n"] * 80), pause=0.05)
        idle = await exchange(port, timeout=4)
    assert slow.closed and [r.status for r in slow.responses] == [408]
    assert idle.closed and idle.data == b""
