"""The upstream leg: requests framed by the gateway on its own pooled keep-alive connections.

The gateway writes each upstream request itself — request line, the allow-listed headers, `Content-Length`
— so nothing a client sent decides framing, and the request target is exactly the bytes the ownership check
saw (no URL library re-quotes or normalises them). Responses are parsed by aiohttp's client protocol, i.e.
llhttp, never by hand. Redirects are never followed: a 3xx is just another response to pass back.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from .bodies import BodyTooLarge, read_stream
from .upstream_connection import StaleConnection, UpstreamConnection

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Methods whose requests always carry Content-Length, even when the body is empty.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class UpstreamUnavailable(Exception):
    """No answer: the connection failed, was refused or reset, or the answer did not parse (→ 502)."""


class UpstreamTimedOut(Exception):
    """No free connection, no connect or no bytes within GATEWAY_UPSTREAM_TIMEOUT_S (→ 504)."""


class UpstreamTooLarge(Exception):
    """The answer is larger than the gateway holds in memory (→ 502)."""


class UpstreamUnexpectedStatus(Exception):
    """An interim (1xx) or protocol-switch answer the gateway never asked for (→ 502)."""


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


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
        self._slots = asyncio.Semaphore(pool_size)
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

    async def send(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> UpstreamResponse:
        """One exchange; GATEWAY_UPSTREAM_TIMEOUT_S bounds the wait for a free connection, the connect, and
        every wait for upstream bytes (armed on the connection itself, so no per-request timer task)."""
        request = self.frame(method, target, headers, body)
        self.inflight += 1
        try:
            await self._acquire_slot()
            try:
                return await self._exchange(request, reuse=True)
            except StaleConnection:
                if method not in IDEMPOTENT:
                    raise UpstreamUnavailable from None
                return await self._exchange(request, reuse=False)
            finally:
                self._slots.release()
        except TimeoutError:
            raise UpstreamTimedOut from None
        except BodyTooLarge:
            raise UpstreamTooLarge from None
        except (aiohttp.ClientError, aiohttp.http_exceptions.HttpProcessingError, OSError, StaleConnection):
            raise UpstreamUnavailable from None
        finally:
            self.inflight -= 1
            if self._all_done is not None and not self.inflight:
                self._all_done.set()

    async def _acquire_slot(self) -> None:
        if self._slots.locked():
            async with asyncio.timeout(self._timeout_s):
                await self._slots.acquire()
        else:
            await self._slots.acquire()

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
            declared = message.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
                raise BodyTooLarge
            body = await read_stream(payload, MAX_RESPONSE_BYTES)
        except BaseException:
            conn.abort()
            raise
        conn.done()
        if conn.should_close or message.upgrade:
            conn.close()
        else:
            self._idle.append((conn, self._running_loop.time() + self._idle_s))
        return UpstreamResponse(message.code, message.headers, body)

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
