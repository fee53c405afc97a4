"""CORS for browser frontends: an exact-origin allow-list, answered at the gateway alone.

CORS decides only whether a *page* may send a request and read its answer; whether the request is allowed is
decided in full for every real request (token, owner, route, method). So the gateway is strict about *who*
and generous about *what*:

- an origin not in the list gets no CORS header at all, which is how a browser is told no;
- an allowed origin may send credentials (`fetch(…, {credentials: "include"})`): the gateway reads no cookie
  or other ambient credential, only an `Authorization` header the page sets itself, so this grants nothing;
- a preflight from an allowed origin is answered 204 for any target, allowing the method and every header
  name it asks for: headers outside the forwarding allow-list are dropped anyway, and a target or method the
  gateway refuses is refused on the real request, with a status and `detail` the page can then read — a
  refused preflight only shows the page "Failed to fetch";
- every answer to an allowed origin, errors included, is readable by it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from multidict import CIMultiDictProxy

from ..http.messages import Reply
from .headers import FORWARDED_REQUEST_HEADERS

DEFAULT_ALLOWED_HEADERS = ", ".join(["Authorization", "X-Request-Id", *FORWARDED_REQUEST_HEADERS])
EXPOSED_HEADERS = (
    "X-Total-Count, X-Next-Cursor, X-Request-Id, Location, ETag, Retry-After, Idempotent-Replayed, "
    "WWW-Authenticate, Allow"
)
PREFLIGHT_MAX_AGE_S = "600"
# What a preflight answer depends on besides the Origin (which decorate() adds to Vary for every answer).
PREFLIGHT_VARY = "Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network"
# RFC 9110 §5.6.2: a method or a header field name is a token. Nothing else is ever echoed.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _requested_headers(headers: CIMultiDictProxy[str]) -> str | None:
    """The header names a preflight asks for, as a list to echo; None when one of them is not a token."""
    names = [n.strip() for value in headers.getall("Access-Control-Request-Headers", ()) for n in value.split(",")]
    names = [n for n in names if n]
    if not all(_TOKEN.fullmatch(n) for n in names):
        return None
    return ", ".join(dict.fromkeys(names)) or DEFAULT_ALLOWED_HEADERS


class PreflightRefused(Exception):
    """Not a well-formed preflight from an allowed origin (→ 403 without CORS headers)."""


def allowed_methods(methods: Iterable[str]) -> str:
    """The `Access-Control-Allow-Methods` value for a policy: every method one of its routes forwards."""
    return ", ".join(sorted(set(methods)))


class Cors:
    def __init__(self, origins: tuple[str, ...]) -> None:
        self._origins = frozenset(origins)

    def _allowed(self, headers: CIMultiDictProxy[str]) -> str | None:
        origins = headers.getall("Origin", ())
        if len(origins) == 1 and origins[0] in self._origins:
            return origins[0]
        return None

    def preflight(self, headers: CIMultiDictProxy[str], allowed: str) -> Reply:
        """Answer an OPTIONS request: 204 to a well-formed preflight from an allowed origin, whatever the target,
        allowing the policy's methods (`allowed`, from allowed_methods) and the one asked for.

        Anything else — another origin, no `Access-Control-Request-Method`, a method or header name that is not
        a token (no browser sends one) — is 403 without CORS headers; OPTIONS is never forwarded.
        """
        origin = self._allowed(headers)
        methods = headers.getall("Access-Control-Request-Method", ())
        allowed_headers = _requested_headers(headers)
        if origin is None or len(methods) != 1 or not _TOKEN.fullmatch(methods[0]) or allowed_headers is None:
            raise PreflightRefused("CORS preflight not allowed")
        method = methods[0]  # one the API lacks is allowed too: the real request then reads its 405
        if method not in allowed.split(", "):
            allowed = f"{allowed}, {method}"
        reply_headers = [
            ("Access-Control-Allow-Methods", allowed),
            ("Access-Control-Allow-Headers", allowed_headers),
            ("Access-Control-Max-Age", PREFLIGHT_MAX_AGE_S),
            ("Vary", PREFLIGHT_VARY),
        ]
        if headers.get("Access-Control-Request-Private-Network") == "true":
            # Chrome's Private Network Access: a page on a public origin calling a gateway on a private address.
            # The origin is already an exact allowed one, so saying yes adds nothing.
            reply_headers.append(("Access-Control-Allow-Private-Network", "true"))
        return Reply(204, reply_headers)

    def decorate(self, request_headers: CIMultiDictProxy[str], reply_headers: list[tuple[str, str]]) -> None:
        """Let an allowed origin read this answer, whatever its status, so the page can show the `detail`.

        Any CORS header the upstream sent was dropped on the way in (headers.py): the gateway alone decides."""
        if not self._origins:
            return
        reply_headers.append(("Vary", "Origin"))
        origin = self._allowed(request_headers)
        if origin is not None:
            reply_headers.append(("Access-Control-Allow-Origin", origin))
            reply_headers.append(("Access-Control-Allow-Credentials", "true"))
            reply_headers.append(("Access-Control-Expose-Headers", EXPOSED_HEADERS))
