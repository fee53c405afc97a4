"""Micro-benchmark: what the gateway's checks cost on their own, µs per request, without sockets.

`Pipeline.handle` (parse → authenticate → authorise → forward → respond) for a GET of the task list with a
token from the verified-token cache, the upstream pool replaced by a stub that answers at once with nginx's
headers and a 180-byte body. No system call and no event-loop turn is timed: the coroutine never suspends, so
it is driven by hand. What is left is the checks and the pipeline's own steps — the part of the forward row
above the floor row that Python code decides. Run pinned: `taskset -c 0 python -m bench.pipeline_micro`
(`--profile` prints where the time goes, by cProfile's deterministic call counts); `make bench` includes it in
its micro table.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import itertools
import os
import pstats
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

if not __package__:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # `python bench/pipeline_micro.py`

from aiohttp import HttpVersion11
from aiohttp.streams import EMPTY_PAYLOAD
from multidict import CIMultiDict, CIMultiDictProxy

from bench import micro, pools, tokens
from gateway.http.messages import Reply, Request
from gateway.http.upstream_pool import UpstreamResponse
from gateway.pipeline import Pipeline
from gateway.policy.default import configured_policy
from gateway.settings import load_settings

SECRET = "s" * 48
UPSTREAM_HEADERS = CIMultiDictProxy(
    CIMultiDict(
        [
            ("Server", "nginx/1.22.1"),
            ("Date", "Sun, 06 Dec 2026 15:00:00 GMT"),
            ("Content-Type", "application/json"),
            ("Content-Length", "180"),
            ("Connection", "keep-alive"),
        ]
    )
)
UPSTREAM_BODY = b"x" * 180


class _NoConnection:
    def write(self, data: bytes) -> None:
        raise AssertionError("the pipeline wrote to the connection itself")


def _answer(coroutine: Coroutine[Any, Any, Reply]) -> Reply:
    """Run a coroutine that never suspends (every await in it completes at once) and return its result."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        reply: Reply = done.value
        return reply
    coroutine.close()
    raise AssertionError("the pipeline suspended: something on the path is not stubbed")


async def _stub_send(*_args: object, **_kwargs: object) -> UpstreamResponse:
    return UpstreamResponse(200, UPSTREAM_HEADERS, UPSTREAM_BODY)


async def _pipeline(access_log: bool) -> Pipeline:
    os.environ.update(
        GATEWAY_UPSTREAM_URL="http://127.0.0.1:9",  # never connected to: the pool's send is stubbed
        GATEWAY_JWT_SECRET=SECRET,
        GATEWAY_INTERNAL_SECRET="i" * 48,
        GATEWAY_ACCESS_LOG="true" if access_log else "false",
    )
    settings = load_settings()
    pipeline = Pipeline(settings, configured_policy(settings, None, os.environ))
    await pipeline.start()
    if pipeline.access_log is not None:
        pipeline.access_log.stream = io.StringIO()
    for pool in pipeline.runtime.pools.values() if pipeline.runtime is not None else ():
        pool.send = _stub_send  # type: ignore[method-assign]
    return pipeline


def _requests() -> list[Request]:
    """The bench's 1,000-token pool as the parser would hand it over; each token verified once first."""
    requests = []
    for i in range(pools.POOL_SIZE):
        user = tokens.user_id(i)
        headers = CIMultiDictProxy(
            CIMultiDict([("Host", "127.0.0.1:8080"), ("Authorization", f"Bearer {tokens.hs256_token(SECRET, user)}")])
        )
        path = f"/api/{user}/tasks"
        requests.append(Request("GET", path, HttpVersion11, headers, EMPTY_PAYLOAD, "127.0.0.1", _NoConnection()))
    return requests


async def _served(access_log: bool, requests: list[Request]) -> tuple[Pipeline, Callable[[], Reply]]:
    """A started pipeline, every token already verified once, and a call that serves the next request."""
    pipeline = await _pipeline(access_log)
    for request in requests:
        assert (await pipeline.handle(request)).status == 200
    served = itertools.count()

    def handle() -> Reply:
        return _answer(pipeline.handle(requests[next(served) % len(requests)]))

    return pipeline, handle


async def _measure(seconds_per_case: float) -> dict[str, float]:
    costs = {}
    requests = _requests()
    for access_log in (False, True):
        pipeline, handle = await _served(access_log, requests)
        costs[f"pipeline: handle() with a stubbed upstream, access log {'on' if access_log else 'off'}"] = (
            micro.best_us(handle, seconds_per_case)
        )
        await pipeline.stop()
    return costs


async def _profile(calls: int = 100_000) -> None:
    """Each function's share of handle() (access log on): cProfile inflates times, its call counts are exact."""
    pipeline, handle = await _served(True, _requests())
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [handle() for _ in range(calls)])
    await pipeline.stop()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = sorted(stats.items(), key=lambda item: -item[1][3])
    total = rows[0][1][3]
    print("| share of handle() | own share | calls a request | function |\n|---:|---:|---:|---|")
    for (path, line, function), (_, count, own, inclusive, _) in rows[1:40]:
        where = f"{'/'.join(path.split('/')[-2:])}:{line} {function}"
        print(f"| {100 * inclusive / total:.1f} % | {100 * own / total:.1f} % | {count / calls:.2f} | `{where}` |")


def pipeline_costs(seconds_per_case: float = 0.5) -> dict[str, float]:
    return asyncio.run(_measure(seconds_per_case))


if __name__ == "__main__":
    micro.main(__doc__, pipeline_costs, "step", profile=lambda: asyncio.run(_profile()))
