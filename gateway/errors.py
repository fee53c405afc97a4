"""The one error shape every gateway answer uses: JSON `{"detail": …}` with the status the contract names."""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler


class GatewayError(Exception):
    """Raised anywhere on the request path; the handler turns it into a response, never into a 500."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


def error_response(status: int, detail: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """Build the JSON error body; `detail` is always a fixed gateway phrase, never client input."""
    return web.Response(
        status=status,
        body=json.dumps({"detail": detail}).encode(),
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def json_http_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own refusals (e.g. no route for a `*` or CONNECT target) in the same JSON shape, not its text page."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason.lower(), {"Server": "taskgate"})
