"""CORS for the browser frontend: exact-origin allow-list, answered at the gateway.

A preflight carries no credentials, so it must never be forwarded or need a token; anything that is not a
real preflight from an allowed origin gets no CORS headers at all, which is how the browser is told no.
"""

from __future__ import annotations

from multidict import CIMultiDictProxy

from .errors import GatewayError
from .headers import FORWARDED_REQUEST_HEADERS
from .paths import API_METHODS
from .protocol import Reply

ALLOWED_REQUEST_HEADERS = ", ".join(["Authorization", "X-Request-Id", *FORWARDED_REQUEST_HEADERS])
EXPOSED_HEADERS = "X-Total-Count, X-Next-Cursor, X-Request-Id, Location, ETag, Retry-After, Idempotent-Replayed"
PREFLIGHT_MAX_AGE_S = "600"
ALLOWED_METHODS = ", ".join(sorted(API_METHODS))


class Cors:
    def __init__(self, origins: tuple[str, ...]) -> None:
        self._origins = frozenset(origins)

    def _allowed(self, headers: CIMultiDictProxy[str]) -> str | None:
        origins = headers.getall("Origin", ())
        if len(origins) == 1 and origins[0] in self._origins:
            return origins[0]
        return None

    def preflight(self, headers: CIMultiDictProxy[str]) -> Reply:
        """Answer an OPTIONS request; only an allowed origin asking for an API method gets a yes.

        The answer is the same for every API path (browsers cache it per URL), and the actual request is
        still checked in full, so being generous here grants nothing.
        """
        origin = self._allowed(headers)
        wanted = headers.get("Access-Control-Request-Method")
        if origin is None or wanted is None:
            raise GatewayError(403, "CORS preflight not allowed")
        if wanted not in API_METHODS:
            raise GatewayError(403, "CORS preflight not allowed")
        return Reply(
            204,
            [
                ("Access-Control-Allow-Methods", ALLOWED_METHODS),
                ("Access-Control-Allow-Headers", ALLOWED_REQUEST_HEADERS),
                ("Access-Control-Max-Age", PREFLIGHT_MAX_AGE_S),
            ],
        )

    def decorate(self, request_headers: CIMultiDictProxy[str], reply_headers: list[tuple[str, str]]) -> None:
        """Let an allowed origin read this response (errors included, so the page can show them).

        Any CORS header the upstream sent was dropped on the way in (headers.py): the gateway alone decides."""
        if not self._origins:
            return
        reply_headers.append(("Vary", "Origin"))
        origin = self._allowed(request_headers)
        if origin is not None:
            reply_headers.append(("Access-Control-Allow-Origin", origin))
            reply_headers.append(("Access-Control-Expose-Headers", EXPOSED_HEADERS))
