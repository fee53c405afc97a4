"""Structured logs: one JSON object per line, so log pipelines need no parsing rules.

Nothing here ever receives a token, a secret or a header value: callers pass named, already-safe fields.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, TextIO

MAX_REMEMBERED_MIDDLES = 1024
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str)


def configure(level: str) -> None:
    """Route every logger (aiohttp's included) through the JSON formatter on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class AccessLog:
    """One JSON line per request, written in batches.

    Going through `logging` with a flush per line cost about a quarter of the gateway's throughput (bench/):
    a record, a formatter and a `write()` system call on every request. Lines are buffered here and written
    when the buffer fills, at most `flush_s` after the first line of a batch, and at shutdown. The line
    shape is the same as JsonFormatter's, so one log pipeline reads both.
    """

    def __init__(self, stream: TextIO | None = None, *, flush_s: float = 0.2, max_bytes: int = 64 * 1024) -> None:
        self.stream = stream
        self._flush_s = flush_s
        self._max_bytes = max_bytes
        self._lines: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._second = -1
        self._stamp = ""
        self._middles: dict[tuple[str, str, int], str] = {}

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def record(
        self,
        *,
        method: str,
        route: str,
        status: int,
        seconds: float,
        request_id: str,
        user: str | None,
        peer: str,
        outcome: str | None = None,
    ) -> None:
        """One line, laid out here with every string escaped to ASCII by the json module's C escaper: a quarter
        of the cost of `json.dumps` on a dict, and no byte a log pipeline could take for a line break.

        `outcome` is given only for a streamed answer cut off after its status was sent (`client_gone`,
        `upstream_aborted`): the status alone would read as a success."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        middle = self._middles.get((method, route, status))
        if middle is None:
            middle = self._middle(method, route, status)
        tail = "" if outcome is None else f', "outcome": {_quote(outcome)}'
        line = (
            f'{{"ts": "{self._stamp}.{int((now - second) * 1000):03d}Z"{middle}{seconds * 1000:.3f}, "request_id": '
            f'{_quote(request_id)}, "user": {"null" if user is None else _quote(user)}, "peer": {_quote(peer)}{tail}}}'
        )
        self._lines.append(line)
        self._size += len(line) + 1
        if self._size >= self._max_bytes or self._loop is None:
            self.flush()
        elif self._timer is None:
            self._timer = self._loop.call_later(self._flush_s, self.flush)

    def _middle(self, method: str, route: str, status: int) -> str:
        """The part of a line that repeats for every request of one method, route and status, escaped once. The
        three are bounded (llhttp's methods, the policy's route templates, the statuses the gateway answers), so
        the table stays small; it is cleared if it ever is not."""
        if len(self._middles) >= MAX_REMEMBERED_MIDDLES:
            self._middles.clear()
        middle = self._middles[method, route, status] = (
            f', "level": "info", "logger": "gateway.access", "msg": "request", "method": {_quote(method)}, '
            f'"route": {_quote(route)}, "status": {status}, "duration_ms": '
        )
        return middle

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        text = "\n".join(self._lines) + "\n"
        self._lines.clear()
        self._size = 0
        stream = self.stream or sys.stderr
        stream.write(text)
        stream.flush()
