"""The gateway's own connection handling (gateway/http/client_connection.py): pipelining, framing, keep-alive
and draining.

The security suite covers the hostile side (deadlines, unreadable requests, upgrades, smuggling); these are the
ordinary HTTP/1.1 duties a server has once it no longer borrows aiohttp's web server.
"""

from __future__ import annotations

import asyncio
import email.utils
import time

from aiohttp import web

from gateway.http import client_connection as protocol
from gateway.http.messages import Reply
from gateway.http.wire import encode_reply
from tests.gateway_fixtures import GatewayFactory, Recorder, make_token
from tests.security.wire import exchange, parse_responses, request

TOKEN = make_token("alice")


def keep(method: str, target: str, *headers: str, version: str = "HTTP/1.1") -> bytes:
    return request(method, target, *headers, token=TOKEN, close=False, version=version)


async def test_pipelined_requests_are_answered_in_order(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    count = protocol.MAX_PIPELINED * 2 + 3  # more than the parser may hold: reading pauses and resumes
    burst = b"".join(keep("GET", f"/api/alice/tasks?n={i}", f"X-Request-Id: req-{i}") for i in range(count))
    ex = await exchange(gw.port, burst + request("GET", "/api/alice/tasks?n=last", token=TOKEN), timeout=10)
    answers = ex.responses
    assert ex.closed and [r.status for r in answers] == [200] * (count + 1)
    assert [r.header("X-Request-Id")[0] for r in answers[:count]] == [f"req-{i}" for i in range(count)]
    assert [r.raw_path for r in recorder.received] == [f"/api/alice/tasks?n={i}" for i in range(count)] + [
        "/api/alice/tasks?n=last"
    ]


async def test_garbage_after_a_good_request_is_answered_400_and_closed(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway()
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(keep("GET", "/api/alice/tasks"))
    first = await reader.readuntil(b'[{"ok": true}]')
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    async with asyncio.timeout(5):
        rest = await reader.read(-1)
    writer.close()
    assert [r.status for r in parse_responses(first + rest)] == [200, 400]
    assert len(recorder.received) == 1
    # In one segment the parser refuses the whole read: the good request is not forwarded either (fail closed).
    ex = await exchange(gw.port, keep("GET", "/api/alice/tasks") + b"NOT HTTP AT ALL\r\n\r\n")
    assert ex.closed and [r.status for r in ex.responses] == [400]
    assert len(recorder.received) == 1


async def test_head_answers_carry_no_body(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    ex = await exchange(gw.port, request("HEAD", "/healthz"))
    head, _, rest = ex.data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405 ") and b"\r\nAllow: GET\r\n" in head
    assert int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) > 0
    assert rest == b"" and ex.closed


async def test_http_1_0_keep_alive_is_honoured_only_when_asked(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway()
    asked = keep("GET", "/api/alice/tasks", "Connection: keep-alive", version="HTTP/1.0")
    ex = await exchange(gw.port, asked + asked, timeout=1)
    answers = ex.responses
    assert [r.status for r in answers] == [200, 200] and not ex.closed
    assert answers[0].header("Connection") == ["keep-alive"]
    plain = await exchange(gw.port, keep("GET", "/api/alice/tasks", version="HTTP/1.0"))
    assert plain.closed and [r.header("Connection") for r in plain.responses] == [["close"]]
    assert len(recorder.received) == 3


async def test_a_half_closed_client_still_gets_its_answer(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(keep("GET", "/api/alice/tasks") + keep("GET", "/api/alice/tasks/7"))
    writer.write_eof()
    async with asyncio.timeout(5):
        data = await reader.read(-1)  # until the gateway closes
    writer.close()
    answers = parse_responses(data)
    assert [r.status for r in answers] == [200, 200]
    assert answers[-1].header("Connection") == ["close"]
    assert [r.raw_path for r in recorder.received] == ["/api/alice/tasks", "/api/alice/tasks/7"]


async def test_answers_carry_a_current_date(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    ex = await exchange(gw.port, request("GET", "/api/alice/tasks", token=TOKEN))
    [date] = ex.responses[0].header("Date")
    assert abs(email.utils.parsedate_to_datetime(date).timestamp() - time.time()) < 5


async def test_stopping_closes_idle_connections_and_finishes_busy_ones(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway(shutdown_timeout_s=5.0)
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow(_request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response([])

    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", gw.port)
    idle_writer.write(keep("GET", "/api/alice/tasks"))
    first = await idle_reader.readuntil(b'[{"ok": true}]')
    assert first.startswith(b"HTTP/1.1 200 ")
    recorder.reply = slow
    busy = asyncio.create_task(exchange(gw.port, keep("GET", "/api/alice/tasks"), timeout=5))
    await arrived.wait()
    stopping = asyncio.create_task(gw.running.stop())
    async with asyncio.timeout(5):
        assert await idle_reader.read() == b""  # the idle connection is closed at once
    release.set()
    ex = await busy
    await stopping
    assert ex.closed and [r.status for r in ex.responses] == [200]
    assert ex.responses[0].header("Connection") == ["close"]
    assert not gw.running.listener.connections.open
    idle_writer.close()


async def test_keep_alive_timeout_counts_from_the_last_answer_not_the_request(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    """A request slower than GATEWAY_KEEPALIVE_TIMEOUT_S is answered; the idle close comes only after it."""
    gw = await start_gateway(keepalive_timeout_s=0.2)

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)  # the upstream's pace: longer than the keep-alive timeout
        return web.json_response([])

    recorder.reply = slow
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(keep("GET", "/api/alice/tasks"))
    async with asyncio.timeout(5):
        answer = await reader.readuntil(b"[]")
        assert answer.startswith(b"HTTP/1.1 200 ") and b"Connection: close" not in answer
        assert await reader.read() == b""  # then closed for idleness, without another byte
    writer.close()


def test_answers_are_framed_by_content_length_whatever_the_status() -> None:
    """An upstream status the gateway has no phrase for still gets a well-formed status line and framing."""
    reply = Reply(599, [("X-A", "1")], b"body")
    data = encode_reply(reply, keep_alive=True, http10=False, head_only=False)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 599 Unknown" and b"X-A: 1" in lines and b"Content-Length: 4" in lines
    assert body == b"body" and not any(line.startswith(b"Connection:") for line in lines)
    head_only = encode_reply(reply, keep_alive=False, http10=True, head_only=True)
    assert head_only.endswith(b"Connection: close\r\n\r\n") and b"Content-Length: 4\r\n" in head_only


async def test_a_body_cut_short_by_the_client_is_400_at_once(recorder: Recorder, start_gateway: GatewayFactory) -> None:
    """Half-closing mid-body fails that body now — also one still queued behind another request — not after
    GATEWAY_BODY_TIMEOUT_S; nothing incomplete reaches the upstream."""
    gw = await start_gateway(body_timeout_s=60.0)
    whole = keep("POST", "/api/alice/tasks", "Content-Type: application/json", "Content-Length: 2") + b"{}"
    cut = keep("POST", "/api/alice/tasks", "Content-Type: application/json", "Content-Length: 10") + b'{"ti'
    for data in (cut, whole + cut):
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(data)
        writer.write_eof()
        async with asyncio.timeout(5):
            answers = parse_responses(await reader.read(-1))
        writer.close()
        assert [r.status for r in answers][-1] == 400
        assert answers[-1].body == b'{"detail": "malformed request body"}'
    assert [r.body for r in recorder.received] == [b"{}"]


async def test_requests_split_across_reads_around_an_idle_connection(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    """An idle connection drops its parser only at a message boundary: a next head that began in the same read as
    a request body, or that arrives in pieces after an answer, is still parsed whole."""
    gw = await start_gateway()
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    post = keep("POST", "/api/alice/tasks", "Content-Type: application/json", "Content-Length: 2") + b"{}"
    second = keep("GET", "/api/alice/tasks?n=2")
    writer.write(post + second[:20])  # a body, then the start of the next head, in one read
    first = await reader.readuntil(b'[{"ok": true}]')
    writer.write(second[20:])
    answered = await reader.readuntil(b'[{"ok": true}]')
    third = keep("GET", "/api/alice/tasks?n=3")  # after the answer: idle at a boundary, then a head in two reads
    writer.write(third[:25])
    await writer.drain()
    writer.write(third[25:])
    last = await reader.readuntil(b'[{"ok": true}]')
    writer.close()
    assert [r.status for r in parse_responses(first + answered + last)] == [200, 200, 200]
    assert [(r.method, r.raw_path) for r in recorder.received] == [
        ("POST", "/api/alice/tasks"),
        ("GET", "/api/alice/tasks?n=2"),
        ("GET", "/api/alice/tasks?n=3"),
    ]
