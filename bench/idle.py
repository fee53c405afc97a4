"""Memory of a proxy holding many idle keep-alive connections.

Each connection first carries one authenticated request (so it is a real, served keep-alive connection,
not a half-open socket), then stays open while the serving processes' VmRSS is read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from bench.procs import established_count, listening_pids, rss_mib
from bench.stack import Server
from bench.wrk import Request

IDLE_CONNECTIONS = 1000


@dataclass(frozen=True)
class Memory:
    workers: int
    rss_before_mib: float
    rss_idle_mib: float
    connections_open: int


async def _open_and_sample(server: Server, requests: list[Request], count: int, pids: list[int]) -> tuple[int, float]:
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=120)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(req: Request) -> None:
            async with session.get(server.url + req.path, headers=req.headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{server.name} answered {response.status} while opening connections")

        # All at once, so each request needs its own connection; aiohttp then keeps them idle in its pool.
        await asyncio.gather(*(one(requests[i % len(requests)]) for i in range(count)))
        return established_count(server.port), max(rss_mib(pid) for pid in pids)


def measure_idle(server: Server, requests: list[Request], count: int = IDLE_CONNECTIONS) -> Memory:
    """Largest VmRSS among the serving processes (RSS is per worker) before and with `count` idle ones."""
    pids = listening_pids(server.process, server.port)
    if not pids:
        raise RuntimeError(f"no process of {server.name} listens on {server.port}")
    before = max(rss_mib(pid) for pid in pids)
    still_open, rss = asyncio.run(_open_and_sample(server, requests, count, pids))
    return Memory(len(pids), before, rss, still_open)
