"""Raw-socket HTTP on both sides of the gateway, for cases where a normal client or server would tidy up.

`exchange` sends bytes exactly as given and reads until the gateway closes (or a deadline passes), so a test
sees every byte the gateway answered, including a second response that should not exist. `WireUpstream` is an
upstream that records the exact bytes of every request the gateway framed, so a test can say "the upstream
saw exactly these requests and nothing else".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

HEAD_END = b"\r\n\r\n"
OK_REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]"


@dataclass
class Exchange:
    data: bytes
    closed: bool

    @property
    def responses(self) -> list[Response]:
        return parse_responses(self.data)

    @property
    def status(self) -> int:
        return self.responses[0].status


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def parse_responses(data: bytes) -> list[Response]:
    """Split a byte stream into Content-Length framed responses (the only framing the gateway sends)."""
    out: list[Response] = []
    rest = data
    while rest:
        head, sep, rest = rest.partition(HEAD_END)
        assert sep, f"truncated response head: {head[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
        length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
        out.append(Response(status, headers, rest[:length]))
        rest = rest[length:]
    return out


async def exchange(port: int, *parts: bytes, timeout: float = 3.0, pause: float = 0.0) -> Exchange:
    """Send `parts` (`pause` seconds apart) while reading, until the peer closes or `timeout` passes.

    Reading runs alongside writing, so an answer sent before the client finished (a 408 to a slow client, a
    413 to an oversize body) is still seen, and a write into a closed connection is not an error.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    chunks: list[bytes] = []

    async def send() -> None:
        with contextlib.suppress(ConnectionError):
            for index, part in enumerate(parts):
                if index and pause:
                    await asyncio.sleep(pause)
                writer.write(part)
                await writer.drain()

    async def receive() -> bool:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
        return True

    sender = asyncio.create_task(send())
    closed = False
    try:
        async with asyncio.timeout(timeout):
            closed = await receive()
    except TimeoutError:
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return Exchange(b"".join(chunks), closed)


def request(
    method: str,
    target: str,
    *headers: str,
    body: bytes = b"",
    token: str | None = None,
    close: bool = True,
    version: str = "HTTP/1.1",
) -> bytes:
    """One request as bytes; headers are passed as complete 'Name: value' lines and sent as given."""
    lines = [f"{method} {target} {version}", "Host: gateway.test"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    lines.extend(headers)
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def assert_not_echoed(data: bytes, *secrets: str) -> None:
    """No secret, nor any of its JWS segments, appears in `data`."""
    for secret in secrets:
        for piece in [secret, *secret.split(".")]:
            if len(piece) >= 8:
                assert piece.encode() not in data, "a token or secret was echoed"


@dataclass
class Seen:
    head: bytes
    body: bytes

    @property
    def request_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    def header(self, name: str) -> list[str]:
        lines = self.head.decode("latin-1").split("\r\n")[1:]
        return [v.strip() for k, _, v in (line.partition(":") for line in lines) if k.lower() == name.lower()]


@dataclass
class WireUpstream:
    """Records each request's exact head and body bytes; refuses anything not Content-Length framed."""

    seen: list[Seen] = field(default_factory=list)
    stray: list[bytes] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(HEAD_END)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        self.stray.append(exc.partial)
                    return
                seen = Seen(head[: -len(HEAD_END)], b"")
                if seen.header("Transfer-Encoding"):
                    self.stray.append(head)
                    return
                lengths = seen.header("Content-Length")
                seen.body = await reader.readexactly(int(lengths[0])) if lengths else b""
                self.seen.append(seen)
                writer.write(OK_REPLY)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def wire_upstream() -> AsyncIterator[WireUpstream]:
    upstream = WireUpstream()
    server = await asyncio.start_server(upstream._serve, "127.0.0.1", 0)
    upstream.port = server.sockets[0].getsockname()[1]
    try:
        yield upstream
    finally:
        server.close()
        await server.wait_closed()


Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_upstream(reply: Reply) -> AsyncIterator[str]:
    """An upstream that reads one request head and then answers (or misbehaves) as `reply` says, then closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(HEAD_END)
            await reply(reader, writer)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
