"""Whole bodies read from a stream with a bound: a peer that sends more is refused, never truncated."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import http_exceptions
from aiohttp.streams import StreamReader

from .messages import Request


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


class BodyTimedOut(Exception):
    """The client did not send its whole body within GATEWAY_BODY_TIMEOUT_S (→ 408, the connection ends)."""


class MalformedBody(Exception):
    """The body's framing broke (bad chunking) or the client went away in the middle of it (→ 400)."""


class CompressedBody(Exception):
    """A Content-Encoding other than identity: the gateway never inflates a body (→ 415)."""


async def read_request_body(request: Request, *, limit: int, timeout_s: float) -> bytes:
    """The whole request body, after every check that needs no body: a declared length over `limit` or a
    compressed body is refused before `100 Continue` invites it."""
    declared = request.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    codings = {c.strip().lower() for v in request.headers.getall("Content-Encoding", ()) for c in v.split(",")}
    if codings - {"identity"}:
        raise CompressedBody
    request.send_continue()
    try:
        async with asyncio.timeout(timeout_s):
            return await read_stream(request.body, limit)
    except TimeoutError:
        raise BodyTimedOut from None
    except (http_exceptions.HttpProcessingError, ConnectionError):
        raise MalformedBody from None
