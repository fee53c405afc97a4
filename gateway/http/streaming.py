"""Response bodies relayed as they arrive: the upstream's bytes go to the client chunk by chunk, never whole.

Memory stays bounded by two buffers, each with its own high-water mark: the upstream body reader (llhttp feeds
it; past twice `upstream_connection.READ_LIMIT` it stops reading the upstream socket) and the client
transport's write buffer (past its high-water mark the relay waits for it to drain before reading more). So a
client that reads slowly slows the upstream down instead of filling the gateway, and a 40 MB download passes
through a few hundred kilobytes.

A relay ends in one of three ways, and the exchange is recorded (access log, metrics) only then:
- complete (`None`): every byte the upstream framed was relayed and the upstream connection can be reused;
- `client_gone`: the client closed, reset, or did not read for GATEWAY_KEEPALIVE_TIMEOUT_S;
- `upstream_aborted`: the upstream closed early, broke its framing, delivered other than its Content-Length,
  or sent nothing for GATEWAY_UPSTREAM_TIMEOUT_S.
Either abort drops the upstream connection (never back to the pool) and cuts the client connection with a
reset, because the status line has already gone out and a cut answer must never look complete.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from aiohttp.streams import StreamReader

log = logging.getLogger("gateway")

CLIENT_GONE = "client_gone"
UPSTREAM_ABORTED = "upstream_aborted"
STREAM_OUTCOMES = frozenset({CLIENT_GONE, UPSTREAM_ABORTED})
_LAST_CHUNK = b"0\r\n\r\n"


class StreamedBody:
    """A response body still arriving from the upstream; its exchange is ended exactly once, by `end`."""

    __slots__ = ("_reader", "_release", "_released", "length", "on_end")

    def __init__(self, reader: StreamReader, length: int | None, release: Callable[[bool], None]) -> None:
        self._reader = reader
        self.length = length  # the upstream's Content-Length; None for chunked or close-delimited bodies
        self._release = release  # gives the upstream connection back (True) or drops it (False), frees the slot
        self._released = False
        # What records the exchange once it is over (the pipeline's access log and metrics): the outcome.
        self.on_end: Callable[[str | None], None] | None = None

    async def read(self) -> bytes:
        """The bytes that arrived since the last read, b"" at the end; raises when the upstream fails mid-body."""
        return await self._reader.readany()

    def abort(self) -> None:
        """The client went away: drop the upstream connection now and wake a relay waiting for upstream bytes."""
        self._drop(reusable=False)
        if not self._reader.is_eof():
            self._reader.set_exception(ConnectionResetError("client went away"))

    def end(self, outcome: str | None) -> None:
        """The relay is over: release the upstream connection (reusable only if the body was read to its end) and
        record the exchange with its outcome."""
        self._drop(reusable=outcome is None and self._reader.at_eof())
        on_end, self.on_end = self.on_end, None
        if on_end is not None:
            on_end(outcome)

    def _drop(self, *, reusable: bool) -> None:
        if not self._released:
            self._released = True
            self._release(reusable)


class Sink(Protocol):
    """The client connection, as far as a relay writes to it."""

    @property
    def gone(self) -> bool: ...

    @property
    def writing_paused(self) -> bool: ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


async def relay(body: StreamedBody, out: Sink, *, chunked: bool, drain_timeout_s: float) -> str | None:
    """Copy `body` to `out` as it arrives (chunk-framed when `chunked`); the outcome, None when complete.

    Each upstream read is bounded by the upstream connection's own timer (GATEWAY_UPSTREAM_TIMEOUT_S, paused
    while the client holds the relay back); each wait for the client to drain by `drain_timeout_s`.
    """
    length = body.length
    sent = 0
    while True:
        try:
            chunk = await body.read()
        except Exception as exc:  # an early close, broken framing, a stall; or the abort of a client gone
            return _cut(out, UPSTREAM_ABORTED, exc)
        if not chunk:
            break
        sent += len(chunk)
        if length is not None and sent > length:  # llhttp stops at Content-Length; never relay past it anyway
            return _cut(out, UPSTREAM_ABORTED, None)
        out.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
        if out.writing_paused:
            try:
                async with asyncio.timeout(drain_timeout_s):
                    await out.drain()
            except (TimeoutError, ConnectionError) as exc:
                return _cut(out, CLIENT_GONE, exc)
    if length is not None and sent != length:
        return _cut(out, UPSTREAM_ABORTED, None)
    if chunked:
        out.write(_LAST_CHUNK)
    return _cut(out, CLIENT_GONE, None) if out.gone else None


def _cut(out: Sink, outcome: str, exc: BaseException | None) -> str:
    """Name why a relay stopped; a failure seen after the client left is the client's leaving, not the upstream's."""
    if out.gone:
        outcome = CLIENT_GONE
    # Only the exception's class: a parser message can quote upstream bytes.
    log.info("streamed answer cut off", extra={"outcome": outcome, "error": type(exc).__name__ if exc else None})
    return outcome
