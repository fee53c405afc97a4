"""Wire encoding of the gateway's answers: status line, headers, framing and `Date`, built as bytes in one place."""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

from .messages import Reply


def _status_line(status: int, phrase: str) -> bytes:
    return f"HTTP/1.1 {status} {phrase}\r\n".encode()


_STATUS_LINES = {status.value: _status_line(status.value, status.phrase) for status in HTTPStatus}
NO_CONTENT = frozenset({204, 304})


class _DateHeader:
    """The `Date` value, formatted at most once a second for all connections of the process."""

    def __init__(self) -> None:
        self._second = 0
        self._line = b""

    def line(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._line


_DATE = _DateHeader()
# (keep_alive, http10) → the Connection line: HTTP/1.1 keeps alive by default, HTTP/1.0 only when told.
_CONNECTION = {
    (False, False): b"Connection: close\r\n",
    (False, True): b"Connection: close\r\n",
    (True, False): b"",
    (True, True): b"Connection: keep-alive\r\n",
}


def encode_reply(reply: Reply, *, keep_alive: bool, http10: bool, head_only: bool) -> bytes:
    """Status line, headers, framing and body of a complete answer, in one piece (so in one `write`). Header
    values are the gateway's own or llhttp-parsed upstream values (no CR or LF can survive either), so they are
    written as they are."""
    head = "".join([f"{n}: {v}\r\n" for n, v in reply.headers]).encode("utf-8", "surrogateescape")
    connection = _CONNECTION[keep_alive, http10]
    if reply.status in NO_CONTENT:  # no body, and no Content-Length either (RFC 9110 §8.6)
        length, body = b"", b""
    else:
        length, body = b"Content-Length: %d\r\n" % len(reply.body), b"" if head_only else reply.body
    status_line = _STATUS_LINES.get(reply.status) or _status_line(reply.status, "Unknown")
    return b"".join((status_line, head, length, _DATE.line(), connection, b"\r\n", body))


def encode_stream_head(reply: Reply, *, length: int | None, keep_alive: bool, http10: bool) -> bytes:
    """The head of an answer whose body follows as it arrives: the upstream's length when it gave one, else
    chunked to an HTTP/1.1 client and close-delimited to an HTTP/1.0 one (which must then get keep_alive=False).
    The gateway frames this itself: the upstream's Transfer-Encoding never reaches the client."""
    if reply.status in NO_CONTENT:
        framing = b""
    elif length is not None:
        framing = b"Content-Length: %d\r\n" % length
    else:
        framing = b"" if http10 else b"Transfer-Encoding: chunked\r\n"
    head = "".join([f"{n}: {v}\r\n" for n, v in reply.headers]).encode("utf-8", "surrogateescape")
    status_line = _STATUS_LINES.get(reply.status) or _status_line(reply.status, "Unknown")
    return b"".join((status_line, head, framing, _DATE.line(), _CONNECTION[keep_alive, http10], b"\r\n"))
