"""aiohttp's server alone answering the fixed body: the ceiling for any aiohttp-based proxy on one core."""

from __future__ import annotations

import argparse

from aiohttp import web

from bench.upstream import FIXED_BODY

_BODY = FIXED_BODY.encode()


async def _fixed(request: web.Request) -> web.Response:
    return web.Response(body=_BODY, content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop instead of asyncio's loop")
    args = parser.parse_args()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _fixed)
    loop = None
    if args.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=loop)


if __name__ == "__main__":
    main()
