"""One pooled keep-alive connection to the task service: the request bytes go out as framed by upstream_pool.py, the
answer is read by llhttp (aiohttp's C response parser), never by hand.

aiohttp's own client protocol does the same job with a general-purpose message queue and re-arms a read timer
on every chunk; here one exchange is in flight per connection, so a single future and one timer that is
pushed back lazily (checked when it fires, not re-created per chunk) are enough.
"""

from __future__ import annotations

import asyncio

from aiohttp import http_exceptions
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import HttpResponseParser, RawResponseMessage
from aiohttp.streams import StreamReader

MAX_RESPONSE_HEADER_LINE = 16 * 1024
READ_LIMIT = 2**16


class StaleConnection(Exception):
    """A reused keep-alive connection was closed by the upstream before it answered."""


class UpstreamConnection(BaseProtocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout_s: float) -> None:
        super().__init__(loop)
        self._responses = HttpResponseParser(
            self,
            loop,
            READ_LIMIT,
            max_line_size=MAX_RESPONSE_HEADER_LINE,
            max_field_size=MAX_RESPONSE_HEADER_LINE,
            read_until_eof=True,  # a body with neither length nor chunking runs until the upstream closes
            auto_decompress=False,
        )
        self._parser = self._responses  # BaseProtocol pauses it when a response body buffers too much
        self._read_timeout_s = read_timeout_s
        self._waiter: asyncio.Future[tuple[RawResponseMessage, StreamReader]] | None = None
        self._body: StreamReader | None = None
        # The read deadline: armed lazily, like the client side's keep-alive timer. It is not re-created and
        # cancelled for every exchange; when it fires it looks at the exchange in progress, if any, and re-arms.
        self._timer: asyncio.TimerHandle | None = None
        self._exchanging = False
        self._last_read = 0.0
        self.should_close = False
        self.answered = False  # bytes of a response arrived since the last request was written

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.should_close and not self.transport.is_closing()

    def send(self, request: bytes) -> asyncio.Future[tuple[RawResponseMessage, StreamReader]]:
        """Write one request; the future resolves with the response head and its body stream."""
        if self.transport is None:
            raise StaleConnection
        self.answered = False
        self._waiter = self._loop.create_future()
        self.transport.write(request)
        self._last_read = self._loop.time()
        self._exchanging = True
        if self._timer is None:
            self._timer = self._loop.call_at(self._last_read + self._read_timeout_s, self._check_timeout)
        return self._waiter

    def done(self) -> None:
        """The response body has been read: the read deadline no longer applies (its timer lapses)."""
        self._body = None
        self._exchanging = False

    def data_received(self, data: bytes) -> None:
        self.answered = True
        self._last_read = self._loop.time()
        try:
            messages, upgraded, _tail = self._responses.feed_data(data)
        except http_exceptions.HttpProcessingError as exc:
            self._fail(exc)
            self.abort()
            return
        for message, body in messages:
            if message.should_close:
                self.should_close = True
            waiter, self._waiter = self._waiter, None
            if waiter is None or waiter.done():  # an answer nobody asked for: the connection is not trusted
                self.should_close = True
                self.abort()
                return
            self._body = body
            waiter.set_result((message, body))
        if upgraded:
            self.should_close = True

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            self._responses.feed_eof()  # completes a body that runs until close
        except http_exceptions.HttpProcessingError as error:
            self._fail(error)
        self._fail(exc if exc is not None else ConnectionResetError("upstream closed the connection"))

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self._body is not None and not self._body.is_eof():
            self._body.set_exception(exc)

    def resume_reading(self, resume_parser: bool = True) -> None:
        if not self._reading_paused:
            # aiohttp's body reader calls this after every read and at every body's end. With nothing paused there
            # is nothing to resume and no bytes held back in the parser: on every response that was two calls into
            # the parser with an empty buffer and two transport calls (bench/profile.py), all no-ops.
            return
        self._last_read = self._loop.time()  # the gateway held the upstream back (a slow client): its wait starts again
        super().resume_reading(resume_parser)

    def _check_timeout(self) -> None:
        """GATEWAY_UPSTREAM_TIMEOUT_S bounds each wait for upstream bytes: idle that long and the exchange fails.
        Not while reading is paused: then the gateway is not waiting for the upstream but for its client."""
        self._timer = None
        if not self._exchanging:
            return  # idle in the pool: no wait to bound until the next request arms it again
        if self._reading_paused:
            self._timer = self._loop.call_at(self._loop.time() + self._read_timeout_s, self._check_timeout)
            return
        due = self._last_read + self._read_timeout_s
        if self._loop.time() < due:
            self._timer = self._loop.call_at(due, self._check_timeout)
            return
        self._fail(TimeoutError())
        self.abort()

    def abort(self) -> None:
        self.should_close = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.should_close = True
        if self.transport is not None:
            self.transport.close()
