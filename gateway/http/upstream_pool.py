"""The upstream leg: requests framed by the gateway on its own pooled keep-alive connections.

The gateway writes each upstream request itself — request line, the allow-listed headers, `Content-Length`
— so nothing a client sent decides framing, and the request target is exactly the bytes the ownership check
saw (no URL library re-quotes or normalises them). Responses are parsed by aiohttp's client protocol, i.e.
llhttp, never by hand. Redirects are never followed: a 3xx is just another response to pass back.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from .slots import Slots
from .streaming import StreamedBody
from .upstream_connection import StaleConnection, UpstreamConnection

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Methods whose requests always carry Content-Length, even when the body is empty.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class UpstreamUnavailable(Exception):
    """No answer: the connection failed, was refused or reset, or the answer did not parse (→ 502)."""


class UpstreamTimedOut(Exception):
    """No free connection, no connect or no bytes within GATEWAY_UPSTREAM_TIMEOUT_S (→ 504)."""


class UpstreamUnexpectedStatus(Exception):
    """An interim (1xx) or protocol-switch answer the gateway never asked for (→ 502)."""


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """The upstream's answer: its body whole when it came with the head, else `stream` (and `body` is empty)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    stream: StreamedBody | None = None


class Upstream:
    """The connection pool of one upstream: sends checked requests and turns every transport failure into one
    of the Upstream* errors above (gateway/errors.py gives each its status)."""

    def __init__(
        self, base_url: str, *, timeout_s: float, connect_timeout_s: float, pool_size: int, idle_s: float = 4.0
    ) -> None:
        url = URL(base_url)
        if url.host is None:
            raise ValueError("upstream URL has no host")
        self.base_url = base_url.rstrip("/")
        self._host = url.host
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if url.scheme == "https" else None
        self._host_header = url.raw_authority or self._host
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._idle_s = idle_s
        self.pool_size = pool_size
        self._slots = Slots(pool_size)
        self._idle: list[tuple[UpstreamConnection, float]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._all_done: asyncio.Event | None = None  # set when retiring and no request is in flight
        self.inflight = 0

    async def start(self) -> None:
        # Held once: on Python 3.11 every get_running_loop() costs a getpid() system call (bench/profile.py).
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        for conn, _ in self._idle:
            conn.close()
        self._idle.clear()

    async def retire(self) -> None:
        """Close once the requests in flight are answered: an upstream a reloaded policy no longer names."""
        self._all_done = asyncio.Event()
        if self.inflight:
            await self._all_done.wait()
        await self.close()

    def frame(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        """The complete upstream request; header values were checked for control characters upstream of here."""
        head = "".join(
            [f"{method} {target} HTTP/1.1\r\nHost: {self._host_header}\r\n"] + [f"{n}: {v}\r\n" for n, v in headers]
        )
        length = b"Content-Length: %d\r\n" % len(body) if body or method in BODY_METHODS else b""
        return b"".join((head.encode("utf-8", "surrogateescape"), length, b"\r\n", body))

    async def send(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        resign: Callable[[], list[tuple[str, str]]] | None = None,
    ) -> UpstreamResponse:
        """One exchange; GATEWAY_UPSTREAM_TIMEOUT_S bounds the wait for a free connection, the connect, and
        every wait for upstream bytes (armed on the connection itself, so no per-request timer task).

        An idempotent request whose reused connection closed before any answer is sent once more on a new
        connection, with the headers `resign` builds afresh: the gateway assertion is single-use, so a resent copy
        must carry a new one, or an upstream that did take the first copy would refuse the second.

        A body that came whole with the head is returned as bytes and the connection is free again at once; a
        body still arriving is returned as a stream that holds the connection and its pool slot until it ends."""
        request = self.frame(method, target, headers, body)
        self.inflight += 1
        acquired = streaming = False
        try:
            if not self._slots.try_take():  # the pool is full: wait in line, within the timeout
                await self._wait_for_slot()
            acquired = True
            try:
                response = await self._exchange(request, reuse=True)
            except StaleConnection:
                if method not in IDEMPOTENT:
                    raise UpstreamUnavailable from None
                if resign is not None:
                    request = self.frame(method, target, resign(), body)
                response = await self._exchange(request, reuse=False)
            streaming = response.stream is not None
            return response
        except TimeoutError:
            raise UpstreamTimedOut from None
        except (aiohttp.ClientError, aiohttp.http_exceptions.HttpProcessingError, OSError, StaleConnection):
            raise UpstreamUnavailable from None
        finally:
            if not streaming:  # a stream releases its slot when it ends (`_stream_ended`)
                if acquired:
                    self._slots.release()
                self._exchange_ended()

    def _exchange_ended(self) -> None:
        self.inflight -= 1
        if self._all_done is not None and not self.inflight:
            self._all_done.set()

    async def _wait_for_slot(self) -> None:
        async with asyncio.timeout(self._timeout_s):
            await self._slots.take(self._running_loop)

    async def _exchange(self, request: bytes, *, reuse: bool) -> UpstreamResponse:
        conn = self._idle_connection() if reuse else None
        reused = conn is not None
        if conn is None:
            conn = await self._connect()
        try:
            try:
                message, payload = await conn.send(request)
            except TimeoutError:  # an OSError too, but a silent upstream may still be working: never replay
                raise
            except OSError:  # ConnectionResetError included: closed before any answer
                if reused and not conn.answered:
                    raise StaleConnection from None
                raise
            if message.code < 200:
                # Never relay an interim or protocol-switch answer: the gateway asked for neither.
                raise UpstreamUnexpectedStatus
            if payload.is_eof():  # the usual case: the whole body came with the head, so nothing to wait for
                body = payload.read_nowait()
            else:
                declared = None if message.chunked else message.headers.get("Content-Length")
                length = int(declared) if declared is not None else None  # llhttp accepted only digits
                release = functools.partial(self._stream_ended, conn, message.upgrade)
                return UpstreamResponse(message.code, message.headers, b"", StreamedBody(payload, length, release))
        except BaseException:
            conn.abort()
            raise
        self._release(conn, message.upgrade)
        return UpstreamResponse(message.code, message.headers, body)

    def _release(self, conn: UpstreamConnection, upgrade: bool) -> None:
        """A connection whose answer was read to its end: back to the pool, unless it must not carry another."""
        conn.done()
        if conn.should_close or upgrade:
            conn.close()
        else:
            self._idle.append((conn, self._running_loop.time() + self._idle_s))

    def _stream_ended(self, conn: UpstreamConnection, upgrade: bool, reusable: bool) -> None:
        """A streamed body ended: read to its end, the connection is released as usual; cut off, it is dropped."""
        if reusable:
            self._release(conn, upgrade)
        else:
            conn.done()
            conn.abort()
        self._slots.release()
        self._exchange_ended()

    def _idle_connection(self) -> UpstreamConnection | None:
        """The most recently used live connection; expired or closed ones are dropped on the way."""
        now = self._running_loop.time()
        while self._idle:
            conn, expires = self._idle.pop()
            if expires > now and conn.usable:
                return conn
            conn.close()
        return None

    @property
    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("Upstream.start() was not awaited")
        return self._loop

    async def _connect(self) -> UpstreamConnection:
        loop = self._running_loop
        conn = UpstreamConnection(loop, self._timeout_s)
        async with asyncio.timeout(self._connect_timeout_s):
            await loop.create_connection(lambda: conn, self._host, self._port, ssl=self._ssl)
        return conn

    async def ready(self, session: aiohttp.ClientSession) -> bool:
        """Whether the upstream answers GET /readyz with 200 (docs/contract.md); used by the gateway's /readyz."""
        try:
            async with session.get(
                self.base_url + "/readyz", allow_redirects=False, timeout=aiohttp.ClientTimeout(total=2)
            ) as resp:
                return resp.status == 200
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False
