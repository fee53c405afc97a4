"""The gateway's general-purpose HTTP client, for its own outbound calls: key sets, the revocation feed, and
upstream readiness. Requests to upstreams never use it (gateway/http/upstream_pool.py frames those itself)."""

from __future__ import annotations

import aiohttp


def outbound_session(*, timeout_s: float, connect_timeout_s: float) -> aiohttp.ClientSession:
    """No cookies kept, nothing decompressed; each caller bounds its own calls more tightly."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )
