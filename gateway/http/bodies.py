"""Whole bodies read from a stream with a bound: a peer that sends more is refused, never truncated."""

from __future__ import annotations

import aiohttp
from aiohttp.streams import StreamReader


class BodyTooLarge(Exception):
    """A peer sent more than the gateway is willing to hold in memory."""


async def read_bounded(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read a whole client-session response body, refusing (not truncating) one larger than `limit`."""
    if (resp.content_length or 0) > limit:
        raise BodyTooLarge
    return await read_stream(resp.content, limit)


async def read_stream(stream: StreamReader, limit: int) -> bytes:
    """Read a whole body, refusing (not truncating) one larger than `limit`."""
    if stream.is_eof():  # the usual case: the whole body came with the head, so nothing to wait for
        whole = stream.read_nowait()
        if len(whole) > limit:
            raise BodyTooLarge
        return whole
    body = bytearray()
    while chunk := await stream.readany():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)
