"""The client connection: llhttp parses each request, the gateway frames each answer itself.

aiohttp's web server spends about 25 µs a request on objects the gateway never uses (a Request with lazy
properties, a router, middleware, a StreamResponse state machine). This protocol keeps what matters from it —
aiohttp's C parser (llhttp, strict mode) with its flow control and pipelining bound — and answers with bytes
built in one place. It also owns the connection-level defences that aiohttp's handler lacked:

- a deadline for request heads (a client trickling header bytes is answered 408 and closed);
- error pages that echo nothing (the parser's message quotes raw bytes, an Authorization line included);
- no protocol switching: an `Upgrade` or `CONNECT` request gets a plain answer and the connection ends, so
  bytes sent after its head are never read as a request;
- an answer sent before the request body was read ends the connection after a short linger, so the unread
  body can never be parsed as the next request;
- a streamed answer (a body still arriving from the upstream) is relayed before the next pipelined answer
  starts, and one cut off mid-body ends the connection with a reset, never with a close that could make a
  close-delimited answer look complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from dataclasses import dataclass

from aiohttp import HttpVersion10, http_exceptions
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import HttpRequestParser, RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader

from .messages import PHRASES, SERVER_NAME, Handler, Reply, Request, internal_error, json_reply
from .streaming import CLIENT_GONE, StreamedBody, relay
from .wire import NO_CONTENT, encode_reply, encode_stream_head

log = logging.getLogger("gateway")

MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 8190
MAX_HEADERS = 100
# Pipelined requests parsed ahead of the one being answered; beyond this the socket is not read.
MAX_PIPELINED = 16
# A request body buffered beyond twice this pauses the socket until the gateway reads it.
READ_LIMIT = 2**16
# After an answer sent before the request body was read (413, 408, 401 …), read and discard for at most this
# long so the client can see the answer before the close, then drop the connection.
LINGER_S = 1.0
# SO_LINGER on, zero seconds: close() sends a reset instead of a FIN.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Per-connection limits: the timeouts come from settings, the sizes are fixed for every deployment."""

    header_timeout_s: float
    keepalive_timeout_s: float


_HEAD_TIMEOUT = encode_reply(
    json_reply(408, {"detail": "request header timeout"}, [("Server", SERVER_NAME)]),
    keep_alive=False,
    http10=False,
    head_only=False,
)

Message = RawRequestMessage | http_exceptions.HttpProcessingError


class Connections:
    """The open connections of one listener, so shutdown can drain them and know when none is left."""

    def __init__(self) -> None:
        self.open: set[ClientConnection] = set()
        self._none_left = asyncio.Event()
        self._none_left.set()

    def add(self, connection: ClientConnection) -> None:
        self.open.add(connection)
        self._none_left.clear()

    def discard(self, connection: ClientConnection) -> None:
        self.open.discard(connection)
        if not self.open:
            self._none_left.set()

    async def drain(self, timeout_s: float) -> None:
        """Close idle connections now, busy ones after their answer; abort what is left after `timeout_s`."""
        for connection in list(self.open):
            connection.close_if_idle()
        try:
            async with asyncio.timeout(timeout_s):
                await self._none_left.wait()
        except TimeoutError:
            for connection in list(self.open):
                connection.abort()


class ClientConnection(BaseProtocol):
    """One client connection: parse, queue pipelined requests, answer them in order, enforce the deadlines."""

    def __init__(self, handler: Handler, limits: ConnectionLimits, registry: Connections) -> None:
        loop = asyncio.get_running_loop()
        super().__init__(loop)
        self._handler = handler
        self._limits = limits
        self._registry = registry
        self._requests = HttpRequestParser(
            self,
            loop,
            READ_LIMIT,
            max_line_size=MAX_LINE_SIZE,
            max_field_size=MAX_FIELD_SIZE,
            max_headers=MAX_HEADERS,
            # Request bodies are forwarded as received and never inflated here (no decompression bombs).
            auto_decompress=False,
            max_msg_queue_size=MAX_PIPELINED,
        )
        self._parser = self._requests  # BaseProtocol pauses it when a request body buffers too much
        # A list, not a deque: an empty deque still holds a 512-byte block, on every idle connection; this queue
        # is bounded by MAX_PIPELINED, so popping its head is cheap.
        self._queue: list[tuple[Message, StreamReader]] = []
        self._task: asyncio.Task[None] | None = None
        self._body: StreamReader = EMPTY_PAYLOAD
        # Two timers: the keep-alive one is pushed back lazily (checked when it fires, not re-created per
        # request); the other is a head deadline or the linger before a close, and exists only then.
        self._idle_since = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._head_overdue = False  # the head deadline passed while an answer was still being written
        self._last_body: StreamReader = EMPTY_PAYLOAD  # body of the last request parsed: bytes past it are a head
        self._ending = False  # no further request is read; the connection closes after the current answer
        self._stream: StreamedBody | None = None  # the body being relayed, if any
        self._left = False  # the client closed its side while a body was being relayed to it
        self.peer = ""
        self.draining = False

    # transport callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peername = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if peername else ""
        self._registry.add(self)
        self._idle_since = self._loop.time()
        self._idle_timer = self._loop.call_at(self._idle_since + self._limits.keepalive_timeout_s, self._idle_check)

    def data_received(self, data: bytes) -> None:
        if self._ending:
            return  # lingering after a final answer: discard
        between_requests = self._last_body.is_eof()  # so these bytes cannot belong to a body
        try:
            messages, upgraded, _tail = self._requests.feed_data(data)
        except http_exceptions.HttpProcessingError as exc:
            self._ending = True
            self._fail_open_bodies(exc)  # a broken body fails its reader, queued or in progress
            self._queue.append((exc, EMPTY_PAYLOAD))
            self._kick()
            return
        if messages:
            self._last_body = messages[-1][1]
            self._queue.extend(messages)
            if upgraded:
                self._ending = True
            if len(self._queue) >= MAX_PIPELINED:
                self._pause_reading_for_buffer()
            self._stop_head_deadline()
            if data and messages[-1][1] is EMPTY_PAYLOAD and not data.endswith(b"\r\n\r\n"):
                # A bodiless request ends with its blank line, so bytes after it in this read began the next
                # head. (Only the timer is decided here; llhttp alone parses.)
                self._deadline = self._loop.call_later(self._limits.header_timeout_s, self._head_expired)
            self._kick()
        elif data and between_requests and self._deadline is None:
            # A request head has started (while idle, or pipelined behind an answer) and must finish in time.
            self._deadline = self._loop.call_later(self._limits.header_timeout_s, self._head_expired)

    def eof_received(self) -> bool:
        self._ending = True
        self._fail_open_bodies(ConnectionResetError("client closed before the body was complete"))
        if self._stream is not None:
            # Mid-stream, a FIN is how a client leaves (an EventSource closed, a download cancelled); waiting for a
            # write to fail could hold the upstream exchange open until the upstream's next event.
            self._left = True
            self._stream.abort()
        # Nothing left to answer: let the transport close. Otherwise half-closed: the answer is still written.
        return self._task is not None

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self._registry.discard(self)
        for timer in (self._idle_timer, self._deadline):
            if timer is not None:
                timer.cancel()
        self._ending = True
        self._fail_open_bodies(ConnectionResetError("client disconnected"))
        self._queue.clear()
        if self._stream is not None:
            self._stream.abort()

    def _fail_open_bodies(self, exc: BaseException) -> None:
        """A body that can no longer complete fails its reader now, instead of at GATEWAY_BODY_TIMEOUT_S."""
        for body in (self._body, *(queued for _, queued in self._queue)):
            if not body.is_eof():
                body.set_exception(exc)

    # answering

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    @property
    def gone(self) -> bool:
        """The client left while a body was being relayed to it (closed or reset)."""
        return self.transport is None or self._left

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its low-water mark again."""
        await self._drain_helper()

    def _kick(self) -> None:
        if self._task is None:
            self._task = self._loop.create_task(self._answer_queued())

    async def _answer_queued(self) -> None:
        try:
            while self._queue and self.transport is not None:
                message, body = self._queue.pop(0)
                if isinstance(message, http_exceptions.HttpProcessingError):
                    self._refuse(message)
                    return
                self._requests.message_consumed()
                if self._buffer_paused and len(self._queue) < MAX_PIPELINED // 2:
                    self._resume_reading_for_buffer()
                    self.data_received(b"")  # parse what the parser held back while the queue was full
                if not await self._answer(message, body):
                    return
                if self._paused:
                    # A client that does not read gets no more answers queued, and is let go in time.
                    async with asyncio.timeout(self._limits.keepalive_timeout_s):
                        await self._drain_helper()
        except TimeoutError:
            log.info("client did not read its answers in time; closing", extra={"peer": self.peer})
            self.abort()
            return
        except OSError:  # the client is gone
            self.abort()
            return
        finally:
            self._task = None
        if self.transport is None:
            return
        if self._head_overdue:
            self._head_timed_out()
        elif self._ending:
            self._end(linger=False)  # the client half-closed, or nothing more will be read
        else:
            self._idle_since = self._loop.time()
            if self._idle_timer is None:
                self._idle_timer = self._loop.call_at(
                    self._idle_since + self._limits.keepalive_timeout_s, self._idle_check
                )

    async def _answer(self, message: RawRequestMessage, body: StreamReader) -> bool:
        """Answer one request; False when the connection ends with this answer."""
        self._body = body
        request = Request(message.method, message.path, message.version, message.headers, body, self.peer, self)
        try:
            reply = await self._handler(request)
        except Exception as exc:  # Pipeline.handle answers its own failures; this is the last resort
            reply = internal_error(exc)
            reply.headers.append(("Server", SERVER_NAME))
        self._body = EMPTY_PAYLOAD
        # Never switch protocols or read past an upgrade: that answer is the connection's last.
        upgrade = message.upgrade or "Upgrade" in message.headers or message.method == "CONNECT"
        unread_body = not body.is_eof()
        last = self._ending and not self._queue
        keep_alive = not (reply.close or message.should_close or upgrade or unread_body or last or self.draining)
        http10 = message.version == HttpVersion10
        head_only = message.method == "HEAD"
        if reply.stream is None:
            self.write(encode_reply(reply, keep_alive=keep_alive, http10=http10, head_only=head_only))
        else:
            if reply.stream.length is None and http10:
                keep_alive = False  # an HTTP/1.0 client reads a body of unknown length until the close
            if not await self._relay(reply, reply.stream, keep_alive=keep_alive, http10=http10, head_only=head_only):
                return False
        if keep_alive:
            return True
        self._end(linger=unread_body or upgrade)
        return False

    async def _relay(
        self, reply: Reply, stream: StreamedBody, *, keep_alive: bool, http10: bool, head_only: bool
    ) -> bool:
        """Write the head now and the body as it arrives; False when the answer was cut off (or never started)
        and the connection is gone with it.

        Framing is the gateway's: the upstream's Content-Length when it gave one, else chunked to an HTTP/1.1
        client, or delimited by the close to an HTTP/1.0 one (the caller ends that connection after it).
        """
        if self.transport is None:  # left while the upstream was answering
            stream.end(CLIENT_GONE)
            return False
        self.write(encode_stream_head(reply, length=stream.length, keep_alive=keep_alive, http10=http10))
        if head_only or reply.status in NO_CONTENT:
            stream.end(None)  # nothing to relay; the unread upstream body makes its connection unusable
            return True
        self._stream = stream
        chunked = stream.length is None and not http10
        outcome: str | None = CLIENT_GONE  # if the relay itself is cancelled (shutdown)
        try:
            outcome = await relay(stream, self, chunked=chunked, drain_timeout_s=self._limits.keepalive_timeout_s)
        finally:
            self._stream = None
            stream.end(outcome)
        if outcome is not None:
            self._reset()
            return False
        return True

    def _reset(self) -> None:
        """Cut the connection with a TCP reset: after a status line, that is the only way to say the answer broke
        (a FIN would end a close-delimited answer as if it were complete)."""
        self._ending = True
        transport = self.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        transport.abort()

    def _refuse(self, exc: http_exceptions.HttpProcessingError) -> None:
        """Answer a request the parser could not read; only the exception's class is logged."""
        status = 431 if isinstance(exc, http_exceptions.LineTooLong) else 400
        extra = {"status": status, "error": type(exc).__name__, "peer": self.peer}
        log.info("request refused by the HTTP layer", extra=extra)
        reply = json_reply(status, {"detail": PHRASES[status]}, [("Server", SERVER_NAME)])
        self.write(encode_reply(reply, keep_alive=False, http10=False, head_only=False))
        self._end(linger=True)

    def _end(self, *, linger: bool) -> None:
        """Close after the answer; with unread bytes behind it, half-close first and discard what still comes, so
        the client reads the answer instead of a reset."""
        self._ending = True
        self._stop_head_deadline()
        transport = self.transport
        if transport is None:
            return
        if linger and transport.can_write_eof():
            try:
                transport.write_eof()
            except OSError:  # the client is already gone
                self.abort()
                return
            self._deadline = self._loop.call_later(LINGER_S, self._close)
        else:
            self._close()

    def _close(self) -> None:
        """Close once written; a client that never reads what is left is cut off after the keep-alive timeout."""
        if self.transport is not None:
            self.transport.close()
            self._deadline = self._loop.call_later(self._limits.keepalive_timeout_s, self.abort)

    # timers

    def _idle_check(self) -> None:
        """Close a connection idle for GATEWAY_KEEPALIVE_TIMEOUT_S; otherwise look again when that could be true."""
        self._idle_timer = None
        if self.transport is None or self._task is not None or self._deadline is not None or self._ending:
            return  # busy, waiting for a head or closing: whoever finishes that re-arms or closes
        due = self._idle_since + self._limits.keepalive_timeout_s
        if self._loop.time() >= due:
            self._end(linger=False)
        else:
            self._idle_timer = self._loop.call_at(due, self._idle_check)

    def _stop_head_deadline(self) -> None:
        self._head_overdue = False
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_expired(self) -> None:
        self._deadline = None
        if self._task is not None:
            self._head_overdue = True  # answered with a 408 once the answer in progress is written
        else:
            self._head_timed_out()

    def _head_timed_out(self) -> None:
        log.info("request head not complete in time; closing", extra={"peer": self.peer})
        self.write(_HEAD_TIMEOUT)
        self._end(linger=True)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close_if_idle(self) -> None:
        """For draining: an idle connection closes now, a busy one after its current answer."""
        self.draining = True
        if self._task is None and self.transport is not None:
            self._end(linger=False)
