"""The client connection: HTTP parser limits, a deadline for request heads, and error pages that echo nothing.

aiohttp answers a request its parser cannot read with a text page quoting the offending bytes (an
Authorization line included) and logs the same text; it has no deadline for a request head, so a client that
trickles header bytes holds a connection until the keep-alive timer; and after an `Upgrade` request it may
leave the connection paused or parse the bytes behind it. The request handler below closes those three gaps
and is the only place where the gateway reaches into aiohttp's protocol class, so a change there shows up in
one file (and in tests/security/).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import HttpVersion11, hdrs, http_exceptions, web
from aiohttp.web_protocol import RequestHandler

from .errors import error_response
from .settings import GatewaySettings

log = logging.getLogger("gateway")

# Phrases for the statuses aiohttp produces itself; the parser's own message is never shown or logged.
_PHRASES = {
    400: "malformed HTTP request",
    431: "request header fields too large",
    500: "internal error",
    504: "request timed out",
}
_HEAD_TIMEOUT_BODY = json.dumps({"detail": "request header timeout"}).encode()
HEAD_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nServer: taskgate\r\n"
    b"Content-Length: " + str(len(_HEAD_TIMEOUT_BODY)).encode() + b"\r\nConnection: close\r\n\r\n" + _HEAD_TIMEOUT_BODY
)


MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 8190
MAX_HEADERS = 100
# After an answer sent before the request body was read (413, 408, 401 …), read and discard for at most this
# long so the client can see the answer before the close, then drop the connection (aiohttp's default is 10 s).
LINGER_S = 1.0


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Per-connection limits: the timeouts come from settings, the sizes are fixed for every deployment."""

    header_timeout_s: float
    keepalive_timeout_s: float
    max_line_size: int = MAX_LINE_SIZE
    max_field_size: int = MAX_FIELD_SIZE
    max_headers: int = MAX_HEADERS


class GatewayRequestHandler(RequestHandler):
    """aiohttp's request handler with a request-head deadline, JSON error pages and no protocol switching."""

    def __init__(self, manager: web.Server, *, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._head_deadline: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._force_close or self._close:
            return
        if self._messages or self._request_in_progress:
            self._cancel_head_deadline()
        elif self._head_deadline is None:
            # Bytes arrived while no request is complete: a request head has started and must finish in time.
            self._head_deadline = self._loop.call_later(self._header_timeout_s, self._head_timed_out)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        waiting_for_head = self._waiter is not None and not self._waiter.done() and not self._messages
        if waiting_for_head and self.transport is not None:
            log.info("request head not complete in time; closing", extra={"peer": self._peer()})
            self.transport.write(HEAD_TIMEOUT_RESPONSE)
            self.force_close()

    def _peer(self) -> str | None:
        if self.transport is None:
            return None
        peername = self.transport.get_extra_info("peername")
        return str(peername[0]) if peername else None

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        if hdrs.UPGRADE in request.headers:
            # The gateway never switches protocols: an upgrade request is answered as plain HTTP and the
            # connection ends with that answer, so bytes sent after its head are never read as a request.
            resp.force_close()
        return await super().finish_response(request, resp, start_time)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Answer an unreadable request (or an unexpected failure) with a fixed JSON phrase.

        The parser's message quotes raw request bytes, so it is dropped; only the exception's class is logged.
        """
        if isinstance(exc, http_exceptions.LineTooLong):
            status = 431
        log.info(
            "request refused by the HTTP layer",
            extra={"status": status, "error": type(exc).__name__ if exc else None, "peer": self._peer()},
        )
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; closing the connection")
        response = error_response(status, _PHRASES.get(status, "request refused"), {"Server": "taskgate"})
        response.force_close()
        return response


class GatewayServer(web.Server):
    """web.Server that builds GatewayRequestHandler connections."""

    def __init__(self, base: web.Server, limits: ConnectionLimits, **handler_kwargs: Any) -> None:
        super().__init__(base.request_handler, request_factory=base.request_factory)
        self._limits = limits
        self._handler_kwargs = handler_kwargs

    def __call__(self) -> GatewayRequestHandler:
        limits = self._limits
        return GatewayRequestHandler(
            self,
            loop=asyncio.get_running_loop(),
            header_timeout_s=limits.header_timeout_s,
            keepalive_timeout=limits.keepalive_timeout_s,
            max_line_size=limits.max_line_size,
            max_field_size=limits.max_field_size,
            max_headers=limits.max_headers,
            # Request bodies are forwarded as received and never inflated here (no decompression bombs).
            auto_decompress=False,
            lingering_time=LINGER_S,
            access_log=None,
            **self._handler_kwargs,
        )


class GatewayRunner(web.AppRunner):
    """AppRunner whose connections are GatewayRequestHandler; the app's start-up and clean-up run as usual."""

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, handle_signals=False, access_log=None, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        return GatewayServer(await super()._make_server(), self._limits)


def gateway_runner(app: web.Application, settings: GatewaySettings) -> GatewayRunner:
    """The runner production uses (and the security tests start), with the limits from settings."""
    limits = ConnectionLimits(
        header_timeout_s=settings.header_timeout_s, keepalive_timeout_s=settings.keepalive_timeout_s
    )
    return GatewayRunner(app, limits)


async def defer_continue(request: web.Request) -> web.StreamResponse | None:
    """Expect handler for the API route: aiohttp's default says `100 Continue` before the handler runs, i.e.
    before the token is checked, inviting bodies the gateway will refuse; `send_continue` says it later."""
    if request.headers.get(hdrs.EXPECT, "").lower() != "100-continue":
        return error_response(417, "only Expect: 100-continue is supported", {"Server": "taskgate"})
    return None


async def send_continue(request: web.BaseRequest) -> None:
    """Invite the body of an `Expect: 100-continue` request, once it has passed every check before the body."""
    if request.version == HttpVersion11 and request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the interim answer is not the start of the response
