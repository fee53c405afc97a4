"""The upstream leg: one pooled keep-alive client, requests framed by the gateway, redirects never followed.

The request target is handed to the client as an already-encoded URL, so the bytes the ownership check saw
are the bytes the task service routes on; yarl must not re-quote or normalise them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .errors import GatewayError

MAX_RESPONSE_BYTES = 16 * 1024 * 1024


class BodyTooLarge(Exception):
    """A peer sent more than the gateway is willing to hold in memory."""


async def read_bounded(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read a whole response body, refusing (not truncating) one larger than `limit`."""
    if (resp.content_length or 0) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in resp.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class Upstream:
    """Sends checked requests to the task service and maps every transport failure to 502 or 504."""

    def __init__(self, base_url: str, *, timeout_s: float, connect_timeout_s: float, pool_size: int) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s)
        self.pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None
        self.inflight = 0

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.pool_size, keepalive_timeout=30, ttl_dns_cache=300, enable_cleanup_closed=True
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pooled client, shared with other outbound calls of the gateway (JWKS, readiness)."""
        if self._session is None:
            raise RuntimeError("Upstream.start() was not awaited")
        return self._session

    async def send(self, method: str, target: str, headers: CIMultiDict[str], body: bytes) -> UpstreamResponse:
        url = URL(self._base + target, encoded=True)
        self.inflight += 1
        try:
            async with self.session.request(
                method, url, headers=headers, data=body or None, allow_redirects=False
            ) as resp:
                payload = await read_bounded(resp, MAX_RESPONSE_BYTES)
                return UpstreamResponse(resp.status, resp.headers, payload)
        except BodyTooLarge:
            raise GatewayError(502, "upstream response too large") from None
        except TimeoutError:
            raise GatewayError(504, "upstream timed out") from None
        except (aiohttp.ClientError, asyncio.IncompleteReadError, OSError):
            raise GatewayError(502, "upstream unavailable") from None
        finally:
            self.inflight -= 1

    async def ready(self) -> bool:
        """Whether the task service reports itself ready; used by the gateway's /readyz."""
        try:
            async with self.session.get(
                self._base + "/readyz", allow_redirects=False, timeout=aiohttp.ClientTimeout(total=2)
            ) as resp:
                return resp.status == 200
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False
