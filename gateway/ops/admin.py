"""The admin listener's app: metrics only, so they can be scraped without exposing them to the public.

Its own module because it is the gateway's only use of aiohttp's web server: server.py imports it only when
GATEWAY_ADMIN_PORT is set (still at start, so a broken install stops the start), and a worker without an admin
port does not carry aiohttp.web (about 2 MiB of RSS, docs/performance.md).
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import GatewayMetrics


def admin_app(metrics: GatewayMetrics) -> web.Application:
    async def serve(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", serve)
    return app
