"""Streamed responses: the upstream's body reaches the client as it arrives, framed by the gateway.

The upstreams here hold their next bytes back until the test, having read the previous ones through the
gateway, tells them to go on (an asyncio.Event): a gateway that buffered would never deliver the first part,
and the test would fail at its liveness deadline instead of passing by luck of timing. The clients are raw
sockets, so the framing the gateway chose (Content-Length, chunked, close-delimited) is visible byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from prometheus_client import generate_latest

from tests.gateway_fixtures import GatewayFactory, GatewayUnderTest, Recorder, make_token
from tests.security.wire import raw_upstream, request

TOKEN = make_token("alice")
DEADLINE_S = 5  # a liveness bound: every wait below fails the test past it, none measures anything


def keep(target: str, *headers: str, version: str = "HTTP/1.1") -> bytes:
    return request("GET", target, *headers, token=TOKEN, close=False, version=version)


class Client:
    """One raw connection to the gateway, reading the answer piece by piece."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, gw: GatewayUnderTest) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", gw.port))

    async def head(self) -> dict[str, str]:
        """The status line (as ':status') and header fields of the next answer, names lowered."""
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")[:-2]
        fields = {"status": lines[0].split(" ")[1]}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            assert name.lower() not in fields, f"{name} sent twice"
            fields[name.lower()] = value.strip()
        return fields

    async def chunk(self) -> bytes:
        """One chunk of a chunked body (b"" for the last one, whose CRLF is consumed too)."""
        size = int((await self.reader.readuntil(b"\r\n"))[:-2], 16)
        data = await self.reader.readexactly(size + 2)
        assert data.endswith(b"\r\n")
        return data[:-2]

    async def chunks_until(self, expected: bytes) -> bytes:
        """Chunk payloads until they add up to `expected` (the gateway may frame the bytes differently)."""
        got = b""
        while len(got) < len(expected):
            piece = await self.chunk()
            assert piece, f"body ended after {got!r}"
            got += piece
        return got

    async def two_chunked_parts(self, first: bytes, go_on: asyncio.Event, last: bytes) -> None:
        """A chunked body in two parts; the upstream sends the second once `go_on` is set, after the first
        has arrived here (a gateway holding the first part back would never get this far)."""
        assert await self.chunks_until(first) == first
        go_on.set()
        assert await self.chunks_until(last) == last
        assert await self.chunk() == b""

    def reset(self) -> None:
        """Leave with a TCP reset, as a killed process or a dropped network does."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    def close(self) -> None:
        self.writer.close()


def requests_counted(gw: GatewayUnderTest, status: str, outcome: str) -> int:
    """taskgate_gateway_requests_total for the tasks route with this status and outcome."""
    text = generate_latest(gw.pipeline.metrics.registry).decode()
    labels = f'method="GET",outcome="{outcome}",route="/api/{{user_id}}/tasks",status="{status}"'
    prefix = f"taskgate_gateway_requests_total{{{labels}}} "
    return sum(int(float(line.removeprefix(prefix))) for line in text.splitlines() if line.startswith(prefix))


def upstream_inflight(gw: GatewayUnderTest) -> int:
    """Exchanges the task service's pool still holds (a stream holds its slot until it ends)."""
    runtime = gw.pipeline.runtime
    assert runtime is not None
    return runtime.pools["task-service"].inflight


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def paced(*parts: bytes, go_on: list[asyncio.Event], length: int | None = None, content_type: str = "") -> Handler:
    """An aiohttp upstream handler writing `parts`, each one after the test set the event before it."""

    async def reply(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type} if content_type else None)
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        for index, part in enumerate(parts):
            if index:
                await go_on[index - 1].wait()
            await response.write(part)
        await response.write_eof()
        return response

    return reply


async def test_server_sent_events_reach_the_client_one_by_one(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    go_on = [asyncio.Event()]
    recorder.reply = paced(b"data: one\n\n", b"data: two\n\n", go_on=go_on, content_type="text/event-stream")
    gw = await start_gateway()
    client = await Client.connect(gw)
    client.writer.write(keep("/api/alice/tasks?stream=events", "Accept: text/event-stream"))
    async with asyncio.timeout(DEADLINE_S):
        head = await client.head()
        await client.two_chunked_parts(b"data: one\n\n", go_on[0], b"data: two\n\n")
        recorder.reply = None  # the chunked framing ended where it should: the connection carries another answer
        client.writer.write(keep("/api/alice/tasks"))
        after = await client.head()
    client.close()
    assert head["status"] == "200" and head["content-type"] == "text/event-stream"
    assert head["transfer-encoding"] == "chunked" and "content-length" not in head
    assert after["status"] == "200"
    assert [r.raw_path for r in recorder.received] == ["/api/alice/tasks?stream=events", "/api/alice/tasks"]
    assert recorder.received[0].header("Accept") == ["text/event-stream"]
    assert requests_counted(gw, "200", "ok") == 2


async def test_an_upstream_content_length_is_kept_and_the_body_relayed_as_it_arrives(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    go_on = [asyncio.Event()]
    recorder.reply = paced(b"first", b"-last", go_on=go_on, length=10)
    gw = await start_gateway()
    client = await Client.connect(gw)
    client.writer.write(keep("/api/alice/tasks"))
    async with asyncio.timeout(DEADLINE_S):
        head = await client.head()
        assert await client.reader.readexactly(5) == b"first"
        go_on[0].set()
        assert await client.reader.readexactly(5) == b"-last"
        recorder.reply = None
        client.writer.write(keep("/api/alice/tasks"))
        after = await client.head()
    client.close()
    assert head["content-length"] == "10" and "transfer-encoding" not in head
    assert after["status"] == "200" and len(recorder.received) == 2


async def test_a_body_of_unknown_length_is_close_delimited_to_an_http_1_0_client(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    go_on = [asyncio.Event()]
    recorder.reply = paced(b"first,", b"last", go_on=go_on)
    gw = await start_gateway()
    client = await Client.connect(gw)
    client.writer.write(keep("/api/alice/tasks", "Connection: keep-alive", version="HTTP/1.0"))
    async with asyncio.timeout(DEADLINE_S):
        head = await client.head()
        assert await client.reader.readexactly(6) == b"first,"
        go_on[0].set()
        rest = await client.reader.read()  # up to the gateway's FIN: a reset would raise here
    client.close()
    assert rest == b"last"
    assert head["connection"] == "close" and "content-length" not in head and "transfer-encoding" not in head


async def test_a_pipelined_request_is_answered_after_the_streamed_body_before_it(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    go_on = [asyncio.Event()]
    streamed = paced(b"first,", b"last", go_on=go_on)

    async def reply(request: web.Request) -> web.StreamResponse:
        return await streamed(request) if request.query["n"] == "1" else web.json_response({"n": 2})

    recorder.reply = reply
    gw = await start_gateway()
    client = await Client.connect(gw)
    client.writer.write(keep("/api/alice/tasks?n=1") + keep("/api/alice/tasks?n=2"))
    async with asyncio.timeout(DEADLINE_S):
        first = await client.head()
        await client.two_chunked_parts(b"first,", go_on[0], b"last")
        second = await client.head()
        body = await client.reader.readexactly(int(second["content-length"]))
    client.close()
    assert first["transfer-encoding"] == "chunked" and json.loads(body) == {"n": 2}
    assert [r.raw_path for r in recorder.received] == ["/api/alice/tasks?n=1", "/api/alice/tasks?n=2"]


CHUNKED_SHORT = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nshort\r\n"  # no last chunk


@pytest.mark.parametrize(
    ("answer", "version", "framing"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "HTTP/1.1", ("content-length", "100")),
        (CHUNKED_SHORT, "HTTP/1.1", ("transfer-encoding", "chunked")),
        (CHUNKED_SHORT, "HTTP/1.0", ("connection", "close")),
    ],
    ids=["content-length", "chunked", "close-delimited to HTTP/1.0"],
)
async def test_an_upstream_closing_mid_body_resets_the_client_connection(
    start_gateway: GatewayFactory, answer: bytes, version: str, framing: tuple[str, str]
) -> None:
    """Fewer bytes than the upstream declared (or no last chunk), then a close: the status is already out, so
    the client connection is reset. A FIN would make the close-delimited answer look complete."""
    go_on = asyncio.Event()

    async def reply(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answer)
        await writer.drain()
        await go_on.wait()  # then the helper closes the connection

    async with raw_upstream(reply) as url:
        gw = await start_gateway(upstream_url=url)
        client = await Client.connect(gw)
        client.writer.write(keep("/api/alice/tasks", version=version))
        async with asyncio.timeout(DEADLINE_S):
            head = await client.head()
            received = await client.chunk() if framing[1] == "chunked" else await client.reader.readexactly(5)
            go_on.set()
            with pytest.raises(ConnectionResetError):
                await client.reader.read()
    client.close()
    assert head["status"] == "200" and head[framing[0]] == framing[1] and received == b"short"
    assert requests_counted(gw, "200", "upstream_aborted") == 1
    assert upstream_inflight(gw) == 0


async def test_an_upstream_stalling_mid_body_is_cut_off_after_its_timeout(start_gateway: GatewayFactory) -> None:
    upstream_closed = asyncio.Event()

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        await writer.drain()
        try:
            await reader.read()  # silent until the gateway drops the connection
        finally:
            upstream_closed.set()

    async with raw_upstream(reply) as url:
        gw = await start_gateway(upstream_url=url, upstream_timeout_s=0.3)
        client = await Client.connect(gw)
        client.writer.write(keep("/api/alice/tasks"))
        async with asyncio.timeout(DEADLINE_S):
            head = await client.head()
            assert await client.reader.readexactly(5) == b"short"
            with pytest.raises(ConnectionResetError):
                await client.reader.read()
            await upstream_closed.wait()  # dropped, not kept in the pool
    client.close()
    assert head["content-length"] == "100"
    assert requests_counted(gw, "200", "upstream_aborted") == 1 and upstream_inflight(gw) == 0


@pytest.mark.parametrize("leave", ["close", "reset"])
async def test_a_client_leaving_mid_stream_ends_the_upstream_exchange(
    start_gateway: GatewayFactory, leave: str
) -> None:
    """An EventSource closed or a download cancelled: the upstream connection is dropped at once, even while the
    upstream has nothing to send (no write to the client has to fail first)."""
    upstream_closed = asyncio.Event()

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"b\r\ndata: one\n\n\r\n")
        await writer.drain()
        try:
            await reader.read()  # no further event until the gateway drops the connection
        finally:
            upstream_closed.set()

    async with raw_upstream(reply) as url:
        gw = await start_gateway(upstream_url=url)
        client = await Client.connect(gw)
        client.writer.write(keep("/api/alice/tasks"))
        async with asyncio.timeout(DEADLINE_S):
            await client.head()
            assert await client.chunks_until(b"data: one\n\n") == b"data: one\n\n"
            client.close() if leave == "close" else client.reset()
            await upstream_closed.wait()
    assert requests_counted(gw, "200", "client_gone") == 1 and upstream_inflight(gw) == 0


async def test_a_client_reading_slowly_holds_the_upstream_back_without_tripping_its_timeout(
    start_gateway: GatewayFactory,
) -> None:
    """Backpressure: while the client does not read, the gateway stops reading the upstream (which then sees its
    writes block) instead of buffering; that pause is the client's, so GATEWAY_UPSTREAM_TIMEOUT_S does not run."""
    piece, pieces = b"x" * 256 * 1024, 256  # 64 MiB: more than every socket buffer on the way can hold
    held_back = asyncio.Event()

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(piece) * pieces))
        for _ in range(pieces):
            writer.write(piece)
            if writer.transport.get_write_buffer_size() >= len(piece):
                held_back.set()  # the kernel took no more: the gateway has stopped reading
            await writer.drain()
        await reader.read()

    async with raw_upstream(reply) as url:
        gw = await start_gateway(upstream_url=url, upstream_timeout_s=0.3)
        client = await Client.connect(gw)
        client.writer.write(keep("/api/alice/tasks"))
        async with asyncio.timeout(DEADLINE_S * 4):
            head = await client.head()
            await held_back.wait()
            # The scenario, not a synchronisation: a client that stops reading for longer than the upstream
            # timeout (three times it).
            await asyncio.sleep(0.9)
            received = 0
            while received < len(piece) * pieces:
                data = await client.reader.read(1024 * 1024)
                assert data, f"the answer ended after {received} bytes"
                received += len(data)
    client.close()
    assert head["content-length"] == str(len(piece) * pieces) and received == len(piece) * pieces
    assert requests_counted(gw, "200", "ok") == 1
