"""The upstream leg on its own: framing, keep-alive reuse, stale connections and broken upstream answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest

from gateway.errors import answer_for
from gateway.http.streaming import UPSTREAM_ABORTED
from gateway.http.upstream_pool import (
    Upstream,
    UpstreamResponse,
    UpstreamTimedOut,
    UpstreamUnavailable,
    UpstreamUnexpectedStatus,
)

UPSTREAM_FAILURES = (UpstreamUnavailable, UpstreamTimedOut, UpstreamUnexpectedStatus)


def status_of(exc: BaseException) -> int:
    """The status the gateway answers for this failure (gateway/errors.py)."""
    assert isinstance(exc, Exception)
    reply = answer_for(exc)
    assert reply is not None
    return reply.status


@dataclass
class RawUpstream:
    """A loopback TCP server that answers each request head with bytes the test chooses."""

    answer: Callable[[bytes], bytes]
    close_after_answer: bool = False
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lengths = [
                    int(ln.split(b":")[1]) for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")
                ]
                length = lengths[0] if lengths else 0
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                writer.write(self.answer(head))
                await writer.drain()
                if self.close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]"


@pytest.fixture
async def raw_upstream() -> AsyncIterator[RawUpstream]:
    upstream = RawUpstream(answer=lambda _head: OK)
    upstream.server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    yield upstream
    upstream.server.close()
    await upstream.server.wait_closed()


async def make_upstream(url: str, timeout_s: float = 2.0) -> Upstream:
    upstream = Upstream(url, timeout_s=timeout_s, connect_timeout_s=1.0, pool_size=4)
    await upstream.start()
    return upstream


async def whole(response: UpstreamResponse) -> bytes:
    """The body; one still arriving is read to its end, which releases its connection."""
    if response.stream is None:
        return response.body
    chunks = []
    while chunk := await response.stream.read():
        chunks.append(chunk)
    response.stream.end(None)
    return b"".join(chunks)


async def test_requests_are_framed_by_the_gateway(raw_upstream: RawUpstream) -> None:
    upstream = await make_upstream(raw_upstream.url)
    await upstream.send("POST", "/api/a/tasks?x=%20", [("Content-Type", "application/json")], b'{"t":1}')
    await upstream.send("GET", "/api/a/tasks", [], b"")
    await upstream.close()
    host = raw_upstream.url.removeprefix("http://").encode()
    assert raw_upstream.requests == [
        b"POST /api/a/tasks?x=%20 HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: 7\r\n\r\n" + b'{"t":1}',
        b"GET /api/a/tasks HTTP/1.1\r\nHost: " + host + b"\r\n\r\n",
    ]


async def test_keep_alive_connections_are_reused(raw_upstream: RawUpstream) -> None:
    upstream = await make_upstream(raw_upstream.url)
    for _ in range(5):
        assert (await upstream.send("GET", "/api/a/tasks", [], b"")).status == 200
    await upstream.close()
    assert raw_upstream.connections == 1


async def test_connection_close_is_honoured(raw_upstream: RawUpstream) -> None:
    raw_upstream.answer = lambda _h: b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    raw_upstream.close_after_answer = True
    upstream = await make_upstream(raw_upstream.url)
    for _ in range(3):
        assert (await upstream.send("PUT", "/api/a/tasks/1", [], b"{}")).status == 200
    await upstream.close()
    assert raw_upstream.connections == 3


async def test_chunked_responses_are_read_whole(raw_upstream: RawUpstream) -> None:
    raw_upstream.answer = lambda _h: (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
    )
    upstream = await make_upstream(raw_upstream.url)
    response = await upstream.send("GET", "/api/a/tasks", [], b"")
    await upstream.close()
    assert response.stream is None and response.body == b"abcdefg"  # whole with its head: no stream


@pytest.mark.parametrize(
    "answer",
    [
        b"not http at all\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 11\r\n\r\n0123456789",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
    ],
)
async def test_malformed_answers_are_502(raw_upstream: RawUpstream, answer: bytes) -> None:
    raw_upstream.answer = lambda _h: answer
    raw_upstream.close_after_answer = True
    upstream = await make_upstream(raw_upstream.url)
    with pytest.raises(UPSTREAM_FAILURES) as caught:
        await upstream.send("GET", "/api/a/tasks", [], b"")
    await upstream.close()
    assert status_of(caught.value) == 502


async def test_silent_upstream_is_504(raw_upstream: RawUpstream) -> None:
    raw_upstream.answer = lambda _h: b""
    upstream = await make_upstream(raw_upstream.url, timeout_s=0.3)
    with pytest.raises(UPSTREAM_FAILURES) as caught:
        await upstream.send("GET", "/api/a/tasks", [], b"")
    await upstream.close()
    assert status_of(caught.value) == 504
    assert upstream.inflight == 0


async def test_stale_keep_alive_is_retried_only_for_idempotent_methods(raw_upstream: RawUpstream) -> None:
    """The upstream answers, keeps the socket open, then drops it without a FIN the pool could notice first."""
    upstream = await make_upstream(raw_upstream.url)
    assert (await upstream.send("GET", "/api/a/tasks", [], b"")).status == 200
    answers = iter([b"", OK])

    def drop_then_ok(_head: bytes) -> bytes:
        return next(answers)

    raw_upstream.answer = drop_then_ok
    raw_upstream.close_after_answer = True
    # GET on the reused connection: the upstream closes it without answering, the gateway retries once.
    assert (await upstream.send("GET", "/api/a/tasks", [], b"")).status == 200
    assert raw_upstream.connections == 2
    await upstream.close()


async def test_a_resent_request_carries_freshly_signed_headers(raw_upstream: RawUpstream) -> None:
    """The assertion is single-use: the copy resent after a stale connection must carry a new one, never the
    first copy's (which an upstream that did read it would refuse as a replay)."""
    upstream = await make_upstream(raw_upstream.url)
    assert (await upstream.send("GET", "/api/a/tasks", [], b"")).status == 200
    answers = iter([b"", OK])
    raw_upstream.answer = lambda _h: next(answers)
    raw_upstream.close_after_answer = True
    signed = iter(["second", "third"])

    def resign() -> list[tuple[str, str]]:
        return [("X-Gateway-Assertion", next(signed))]

    first = [("X-Gateway-Assertion", "first")]
    assert (await upstream.send("GET", "/api/a/tasks", first, b"", resign=resign)).status == 200
    sent = [line for r in raw_upstream.requests[1:] for line in r.split(b"\r\n") if b"Assertion" in line]
    assert sent == [b"X-Gateway-Assertion: first", b"X-Gateway-Assertion: second"]
    await upstream.close()


async def test_stale_keep_alive_post_is_not_replayed(raw_upstream: RawUpstream) -> None:
    upstream = await make_upstream(raw_upstream.url)
    assert (await upstream.send("GET", "/api/a/tasks", [], b"")).status == 200
    raw_upstream.answer = lambda _h: b""
    raw_upstream.close_after_answer = True
    with pytest.raises(UPSTREAM_FAILURES) as caught:
        await upstream.send("POST", "/api/a/tasks", [], b"{}")
    assert status_of(caught.value) == 502
    assert [r.split(b" ")[0] for r in raw_upstream.requests] == [b"GET", b"POST"]
    await upstream.close()


async def test_a_second_unasked_answer_poisons_the_connection(raw_upstream: RawUpstream) -> None:
    """Two answers to one request (a desynchronised upstream): the extra one is never served to anybody."""
    raw_upstream.answer = lambda _h: OK + b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nforeign"
    upstream = await make_upstream(raw_upstream.url)
    first = await upstream.send("GET", "/api/a/tasks", [], b"")
    raw_upstream.answer = lambda _h: OK
    second = await upstream.send("GET", "/api/a/tasks/1", [], b"")
    await upstream.close()
    assert first.body == second.body == b"[]"
    assert raw_upstream.connections == 2  # the poisoned connection was dropped, not reused


async def test_the_timeout_bounds_each_wait_not_the_whole_body(raw_upstream: RawUpstream) -> None:
    """A body that keeps arriving is read whole even when it takes several timeouts in all."""
    pieces = 6

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % pieces)
        for _ in range(pieces):
            await asyncio.sleep(0.1)  # the upstream's pace, not the test's synchronisation
            writer.write(b"x")
            await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    upstream = await make_upstream(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", timeout_s=0.25)
    answer = await upstream.send("GET", "/api/a/tasks", [], b"")
    body = await whole(answer)
    await upstream.close()
    server.close()
    assert body == b"x" * pieces


async def test_a_silent_upstream_times_out_on_a_reused_connection_too() -> None:
    """The read deadline is armed lazily (once per connection, re-armed when it fires): the second exchange on a
    kept-alive connection is bounded like the first, whether or not the first one's timer is still pending."""
    answered = 0

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                if answered == 0:
                    writer.write(OK)
                    await writer.drain()
                answered += 1  # every later request is read and never answered
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer_once, "127.0.0.1", 0)
    upstream = await make_upstream(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", timeout_s=0.3)
    try:
        assert (await upstream.send("GET", "/a", [], b"")).status == 200
        async with asyncio.timeout(10):  # a deadline that never fires would hang here instead
            with pytest.raises(UpstreamTimedOut):
                await upstream.send("POST", "/b", [], b"{}")  # not idempotent: no resend on a new connection
        assert answered == 2
    finally:
        await upstream.close()
        server.close()
        await server.wait_closed()


async def test_a_close_delimited_body_is_relayed_whole(raw_upstream: RawUpstream) -> None:
    """No Content-Length and no chunking: the body runs until the upstream closes (RFC 9112 §6.3), never cut."""
    raw_upstream.answer = lambda _h: b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[1, 2, 3]"
    raw_upstream.close_after_answer = True
    upstream = await make_upstream(raw_upstream.url)
    answer = await upstream.send("GET", "/api/a/tasks", [], b"")
    body = await whole(answer)
    again = await upstream.send("GET", "/api/a/tasks", [], b"")  # the closed connection is not reused
    body_again = await whole(again)
    await upstream.close()
    assert answer.status == 200 and body == body_again == b"[1, 2, 3]"
    assert raw_upstream.connections == 2


@dataclass
class Paced:
    """An upstream that sends a head and the first part of a body, then the rest when the test says so."""

    go_on: asyncio.Event = field(default_factory=asyncio.Event)
    connections: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst")
                await writer.drain()
                await self.go_on.wait()
                self.go_on.clear()
                writer.write(b"-last")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_a_body_still_arriving_is_a_stream_holding_its_connection_until_it_ends() -> None:
    paced = Paced()
    server = await asyncio.start_server(paced.handle, "127.0.0.1", 0)
    upstream = await make_upstream(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    answer = await upstream.send("GET", "/api/a/tasks", [], b"")
    assert answer.stream is not None and answer.stream.length == 10 and answer.body == b""
    assert await answer.stream.read() == b"first"
    assert upstream.inflight == 1  # the slot and the connection are held while the body arrives
    paced.go_on.set()
    assert await answer.stream.read() == b"-last"
    assert await answer.stream.read() == b""
    answer.stream.end(None)
    assert upstream.inflight == 0
    paced.go_on.set()  # the next answer's second part may come at once
    again = await upstream.send("GET", "/api/a/tasks", [], b"")
    assert await whole(again) == b"first-last"
    await upstream.close()
    server.close()
    assert paced.connections == 1  # read to its end, the connection went back to the pool


@pytest.mark.parametrize(
    ("then_wait", "error"), [(False, aiohttp.http_exceptions.ContentLengthError), (True, TimeoutError)]
)
async def test_a_body_cut_short_fails_the_stream_and_drops_the_connection(
    raw_upstream: RawUpstream, then_wait: bool, error: type[Exception]
) -> None:
    """Fewer bytes than the Content-Length, then a close (or silence past the timeout): the read fails."""
    raw_upstream.answer = lambda _h: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"
    raw_upstream.close_after_answer = not then_wait
    upstream = await make_upstream(raw_upstream.url, timeout_s=0.3)
    answer = await upstream.send("GET", "/api/a/tasks", [], b"")
    assert answer.stream is not None
    with pytest.raises(error):
        while await answer.stream.read():
            pass
    answer.stream.end(UPSTREAM_ABORTED)
    assert upstream.inflight == 0
    raw_upstream.answer = lambda _h: OK
    assert await whole(await upstream.send("GET", "/api/a/tasks", [], b"")) == b"[]"
    await upstream.close()
    assert raw_upstream.connections == 2  # the cut-off connection was not reused


async def test_a_full_pool_queues_the_next_request_until_a_slot_is_free() -> None:
    """pool_size bounds the exchanges in flight: with the only slot held by an upstream that has not answered,
    the next request waits for the slot (never opening a second connection) and is sent once the first answer
    came."""
    release = asyncio.Event()
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                seen.append(await reader.readuntil(b"\r\n\r\n"))
                await release.wait()
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    upstream = Upstream(url, timeout_s=10.0, connect_timeout_s=1.0, pool_size=1)
    await upstream.start()
    try:
        first = asyncio.create_task(upstream.send("GET", "/a", [], b""))
        while not seen:  # the first request holds the only slot, unanswered
            await asyncio.sleep(0.01)
        queued = asyncio.create_task(upstream.send("GET", "/b", [], b""))
        for _ in range(20):  # however long it is given, /b does not reach the upstream while /a holds the slot
            await asyncio.sleep(0)
        assert len(seen) == 1 and not queued.done()
        release.set()
        assert (await first).status == 200 and (await queued).status == 200
        assert [head.split(b" ")[1] for head in seen] == [b"/a", b"/b"]
    finally:
        await upstream.close()
        server.close()
        await server.wait_closed()
