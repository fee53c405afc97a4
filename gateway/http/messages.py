"""What the client-side HTTP layer hands the pipeline, and what the pipeline hands back.

A Request is the parsed head with its body stream, unparsed target and peer; a Reply is an answer, complete
(framed by `wire.encode_reply`) or with a body still arriving from the upstream (relayed by `streaming.relay`).
Both are plain values, so the pipeline never touches a socket.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import HttpVersion, HttpVersion10, HttpVersion11
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from multidict import CIMultiDictProxy

from .streaming import StreamedBody

log = logging.getLogger("gateway")

SERVER_NAME = "taskgate"
SUPPORTED_VERSIONS = (HttpVersion10, HttpVersion11)
# Phrases for the statuses the HTTP layer produces itself; the parser's own message is never shown or logged.
PHRASES = {400: "malformed HTTP request", 431: "request header fields too large", 500: "internal error"}


class Writer(Protocol):
    """The connection a request came on, as far as the pipeline may use it: an interim `100 Continue`."""

    def write(self, data: bytes) -> None: ...


@dataclass(slots=True)
class Reply:
    """An answer: `body` whole (framed with its Content-Length), or, when `stream` is set, a body relayed as it
    arrives (and `body` is empty)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    close: bool = False
    stream: StreamedBody | None = None


def json_reply(status: int, payload: object, headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(status, [("Content-Type", "application/json"), *(headers or ())], json.dumps(payload).encode())


def error_response(status: int, detail: str, headers: list[tuple[str, str]] | None = None) -> Reply:
    """The one error shape, `{"detail": …}`; `detail` is always a fixed gateway phrase, never client input."""
    return json_reply(status, {"detail": detail}, headers)


def internal_error(exc: Exception) -> Reply:
    """The answer to a bug on the request path: a bare JSON 500 that ends the connection.

    Logged by class and place only: an exception's message may quote request bytes (a token included)."""
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    where = f"{frame.filename}:{frame.lineno} in {frame.name}"
    log.error("unexpected failure while answering a request", extra={"error": type(exc).__name__, "where": where})
    reply = json_reply(500, {"detail": PHRASES[500]})
    reply.close = True
    return reply


@dataclass(slots=True)
class Request:
    """What the gateway's handler sees of one parsed request; `target` is the raw request-target, unparsed."""

    method: str
    target: str
    version: HttpVersion
    headers: CIMultiDictProxy[str]
    body: StreamReader
    peer: str
    connection: Writer

    @property
    def has_body(self) -> bool:
        """Content-Length above zero or chunked; anything else has no body to wait for."""
        return self.body is not EMPTY_PAYLOAD

    def send_continue(self) -> None:
        """Invite the body of an `Expect: 100-continue` request, once it has passed every check before the body."""
        if self.version != HttpVersion10 and self.headers.get("Expect", "").lower() == "100-continue":
            self.connection.write(b"HTTP/1.1 100 Continue\r\n\r\n")


Handler = Callable[[Request], Awaitable[Reply]]


class UnsupportedVersion(Exception):
    """Neither HTTP/1.0 nor HTTP/1.1 (→ 400): llhttp reads a request line without a version (HTTP/0.9) and
    then still parses header lines."""


class UnsupportedExpectation(Exception):
    """An `Expect` other than `100-continue` (→ 417)."""


def check_request(request: Request) -> None:
    """What every request must be before anything else looks at it."""
    if request.version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersion
    expect = request.headers.get("Expect")
    if expect is not None and expect.lower() != "100-continue":
        raise UnsupportedExpectation
