"""The connection's side of a streamed answer, with a handler that hands it a body still arriving.

HEAD is never forwarded by the policy today, so a streamed answer to it is built here directly: its head
carries the framing the body would have had, no body follows, and the stream is ended without being read
(so its upstream connection, with a body left unread on it, could never be reused).
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader

from gateway.http.client_connection import ConnectionLimits
from gateway.http.listener import Listener
from gateway.http.messages import Reply, Request, json_reply
from gateway.http.streaming import StreamedBody
from tests.security.wire import exchange, parse_responses, request


@pytest.mark.parametrize(("length", "framing"), [(10, b"Content-Length: 10"), (None, b"Transfer-Encoding: chunked")])
async def test_a_streamed_answer_to_head_is_its_head_alone(length: int | None, framing: bytes) -> None:
    loop = asyncio.get_running_loop()
    body = StreamReader(BaseProtocol(loop), 2**16, loop=loop)
    body.feed_data(b"never sent")
    released: list[bool] = []
    ended: list[str | None] = []

    async def handler(req: Request) -> Reply:
        if req.method != "HEAD":
            return json_reply(200, {"after": True})
        stream = StreamedBody(body, length, released.append)
        stream.on_end = ended.append
        return Reply(200, [("Content-Type", "text/plain")], stream=stream)

    listener = Listener(handler, ConnectionLimits(header_timeout_s=5, keepalive_timeout_s=5))
    await listener.open("127.0.0.1", 0)
    try:
        pipelined = request("HEAD", "/file", close=False) + request("GET", "/next")
        ex = await exchange(listener.port, pipelined, timeout=5)
    finally:
        await listener.close(1)
    head, _, rest = ex.data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and framing in head.split(b"\r\n")
    [after] = parse_responses(rest)  # the next answer starts right after the head: no body in between
    assert after.status == 200 and after.body == b'{"after": true}'
    assert b"never sent" not in ex.data
    assert released == [False] and ended == [None]
