"""The gateway's own connection and upstream code proxying with no checks at all: the floor under its checks.

No token, no ownership check, no assertion, no header allow-lists: the request line goes upstream as it came,
the upstream's body and Content-Type come back. The gateway row minus this row is what the checks cost.
"""

from __future__ import annotations

import argparse
import asyncio

import uvloop

from gateway.http.client_connection import ConnectionLimits
from gateway.http.listener import Listener
from gateway.http.messages import Reply, Request
from gateway.http.upstream_pool import Upstream


async def _serve(port: int, upstream_url: str) -> None:
    upstream = Upstream(upstream_url, timeout_s=15, connect_timeout_s=3, pool_size=256)
    await upstream.start()

    async def forward(request: Request) -> Reply:
        answer = await upstream.send(request.method, request.target, [], b"")
        return Reply(answer.status, [("Content-Type", answer.headers.get("Content-Type", ""))], answer.body)

    listener = Listener(forward, ConnectionLimits(header_timeout_s=10, keepalive_timeout_s=30))
    await listener.open("127.0.0.1", port)
    await asyncio.Event().wait()  # until the bench stops the process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8001")
    args = parser.parse_args()
    uvloop.run(_serve(args.port, args.upstream))


if __name__ == "__main__":
    main()
