"""The straightforward aiohttp proxy the issue compares against: what one writes first.

Per request: pyjwt decodes the bearer token (HS256, exp), the path's user is compared with `sub`, and
the request is forwarded with `ClientSession.request`, the body read whole and answered. No token cache,
no header allow-list work beyond the minimum, asyncio's default loop. It is a yardstick, not a product.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator

import jwt
from aiohttp import ClientSession, web

_SECRET = web.AppKey("secret", str)
_UPSTREAM = web.AppKey("upstream", str)
_SESSION = web.AppKey("session", ClientSession)


def _error(status: int, detail: str) -> web.Response:
    return web.json_response({"detail": detail}, status=status)


async def _proxy(request: web.Request) -> web.StreamResponse:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return _error(401, "Not authenticated")
    try:
        claims = jwt.decode(token, request.app[_SECRET], algorithms=["HS256"], options={"require": ["exp"]})
    except jwt.InvalidTokenError:
        return _error(401, "Invalid token")
    if claims.get("sub") != request.match_info["user_id"]:
        return _error(403, "Forbidden")
    async with request.app[_SESSION].request(
        request.method,
        request.app[_UPSTREAM] + request.raw_path,
        headers={"X-User-Id": claims["sub"], "Content-Type": request.headers.get("Content-Type", "")},
        data=await request.read(),
    ) as upstream:
        body = await upstream.read()
        return web.Response(body=body, status=upstream.status, content_type=upstream.content_type)


async def _session(app: web.Application) -> AsyncIterator[None]:
    app[_SESSION] = ClientSession()
    yield
    await app[_SESSION].close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8001")
    args = parser.parse_args()
    app = web.Application()
    app[_SECRET] = os.environ["BENCH_JWT_SECRET"]
    app[_UPSTREAM] = args.upstream.rstrip("/")
    app.cleanup_ctx.append(_session)
    app.router.add_route("*", "/api/{user_id}/tasks{tail:.*}", _proxy)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
