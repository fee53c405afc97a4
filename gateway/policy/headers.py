"""Which headers cross the gateway, in both directions.

Requests are built from an allow-list, so a header the gateway does not know about (a spoofed identity, a
method override, a rewrite hint) can never reach the service. Responses lose hop-by-hop headers and anything
internal.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

from multidict import CIMultiDictProxy

from .ids import UniqueIds

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

_FORWARDED = {name.lower(): name for name in FORWARDED_REQUEST_HEADERS}

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
# CORS is decided at the gateway alone (cors.py), so the service cannot widen it.
CORS_RESPONSE_HEADERS = frozenset(
    "access-control-" + name
    for name in (
        "allow-origin",
        "allow-credentials",
        "expose-headers",
        "allow-methods",
        "allow-headers",
        "max-age",
        "allow-private-network",
    )
)
_RESPONSE_DROPPED = (
    HOP_BY_HOP
    | CORS_RESPONSE_HEADERS
    | {"x-user-id", "x-gateway-assertion", "server", "content-length", "date", "x-request-id"}
)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_FRESH_IDS = UniqueIds()


def _named_in_connection(headers: CIMultiDictProxy[str]) -> frozenset[str]:
    """Headers a peer declared hop-by-hop through `Connection` (RFC 9110 §7.6.1)."""
    values = headers.getall("Connection", ())
    if len(values) == 1:
        return _connection_tokens(values[0])
    return frozenset(token for value in values for token in _connection_tokens(value))


@functools.lru_cache(maxsize=64)
def _connection_tokens(value: str) -> frozenset[str]:
    """The names in one `Connection` value, remembered: browsers send `keep-alive` on every request, and an
    upstream its own few values, so the split and lower-casing is done once per distinct value."""
    return frozenset(token.strip().lower() for token in value.split(","))


def request_id(values: Iterable[str]) -> str:
    """The client's X-Request-Id when it is one well-formed value; a fresh one otherwise.

    Fresh ids are a random per-process prefix and a counter (ids.py): unique across workers, replicas and
    restarts without a system call or a UUID on every request.
    """
    given = list(values)
    if len(given) == 1 and _REQUEST_ID.fullmatch(given[0]):
        return given[0]
    return _FRESH_IDS.next()


class UnsafeHeader(ValueError):
    """A forwarded header value holds a control character (→ 400); it is never written upstream."""


def upstream_request_headers(
    incoming: CIMultiDictProxy[str],
    *,
    user_id: str | None,
    claims: Sequence[tuple[str, str]],
    assertion: str,
    request_id: str,
    peer: str,
    scheme: str,
) -> list[tuple[str, str]]:
    """Headers for the upstream request: allow-listed client headers plus the gateway's own.

    `user_id` (the token's `sub`) becomes `X-User-Id`; None (an `auth: none` route) sends no identity at all.
    `claims` are the route's `headers:` (policy/match.claim_headers): their names can never be allow-listed
    client headers (the policy file refuses them), so a client's copy never crosses and is never mixed in.

    The gateway writes these lines itself, so every copied value is checked for CR, LF, NUL and other
    controls here even though the server parser already refuses most of them: framing must not depend on it.
    """
    picked: dict[str, str] = {}
    for name, value in incoming.items():  # one pass over what the client sent, usually a handful of lines
        canonical = _FORWARDED.get(name.lower())
        if canonical is None:
            continue
        if not value.isprintable() and _CONTROL.search(value):  # printable text holds no control character
            raise UnsafeHeader(canonical)
        earlier = picked.get(canonical)
        picked[canonical] = value if earlier is None else f"{earlier}, {value}"
    if picked and "Connection" in incoming:
        named_in_connection = _named_in_connection(incoming)
        picked = {name: value for name, value in picked.items() if name.lower() not in named_in_connection}
    out = list(picked.items())
    if user_id is not None:
        out.append(("X-User-Id", user_id))
        out.extend(claims)
    out.append(("X-Gateway-Assertion", assertion))
    out.append(("X-Request-Id", request_id))
    out.append(("X-Forwarded-For", peer))
    out.append(("X-Forwarded-Proto", scheme))
    return out


def client_response_headers(upstream: CIMultiDictProxy[str]) -> list[tuple[str, str]]:
    """End-to-end headers of the upstream response; framing (and X-Request-Id) is redone by the gateway."""
    named_in_connection = _named_in_connection(upstream) if "Connection" in upstream else frozenset()
    out: list[tuple[str, str]] = []
    for name, value in upstream.items():
        lowered = name.lower()
        if lowered in _RESPONSE_DROPPED or lowered in named_in_connection:
            continue
        if not value.isprintable() and _CONTROL.search(value):
            continue  # aiohttp's response parser is lenient: a control byte is dropped here, never relayed
        out.append((name, value))
    return out
