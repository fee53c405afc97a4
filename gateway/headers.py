"""Which headers cross the gateway, in both directions.

Requests are built from an allow-list, so a header the gateway does not know about (a spoofed identity, a
method override, a rewrite hint) can never reach the service. Responses lose hop-by-hop headers and anything
internal.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

FORWARDED_REQUEST_HEADERS = (
    "Accept",
    "Accept-Language",
    "Content-Type",
    "User-Agent",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    "traceparent",
    "tracestate",
    "Cache-Control",
)

HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)
_RESPONSE_DROPPED = HOP_BY_HOP | {"x-user-id", "x-gateway-assertion", "server", "content-length", "date"}
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _named_in_connection(headers: CIMultiDictProxy[str]) -> set[str]:
    """Headers a peer declared hop-by-hop through `Connection` (RFC 9110 §7.6.1)."""
    return {token.strip().lower() for value in headers.getall("Connection", ()) for token in value.split(",")}


def request_id(values: Iterable[str]) -> str:
    """The client's X-Request-Id when it is one well-formed value; a fresh one otherwise."""
    given = list(values)
    if len(given) == 1 and _REQUEST_ID.fullmatch(given[0]):
        return given[0]
    return uuid.uuid4().hex


def upstream_request_headers(
    incoming: CIMultiDictProxy[str],
    *,
    user_id: str,
    assertion: str,
    request_id: str,
    peer: str,
    scheme: str,
) -> CIMultiDict[str]:
    """Headers for the upstream request: allow-listed client headers plus the gateway's own."""
    out: CIMultiDict[str] = CIMultiDict()
    named_in_connection = _named_in_connection(incoming)
    for name in FORWARDED_REQUEST_HEADERS:
        if name.lower() in named_in_connection:
            continue
        values = incoming.getall(name, ())
        if len(values) == 1:
            out[name] = values[0]
        elif values:
            out[name] = ", ".join(values)
    out["X-User-Id"] = user_id
    out["X-Gateway-Assertion"] = assertion
    out["X-Request-Id"] = request_id
    out["X-Forwarded-For"] = peer
    out["X-Forwarded-Proto"] = scheme
    return out


def client_response_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """End-to-end headers of the upstream response; framing is redone by the gateway's own server."""
    named_in_connection = _named_in_connection(upstream)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.items():
        lowered = name.lower()
        if lowered in _RESPONSE_DROPPED or lowered in named_in_connection:
            continue
        out.add(name, value)
    return out
