"""Process start-up: settings, the policy, the event loop, the parser check, and N workers sharing one port.

Workers are separate processes bound with SO_REUSEPORT, so the kernel spreads connections across them and a
replica scales with its cores while holding no shared state. SIGHUP reloads the policy file: each worker
reads and validates it itself and swaps it in whole (Pipeline.reload); the master only passes the signal on.

Exit codes: 2 for a setting that is missing or unusable (before anything starts), 1 for a policy file that
does not validate or a port that cannot be bound — each with one line saying what to fix.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING

from aiohttp import http

from .http.client_connection import ConnectionLimits
from .http.listener import Listener
from .ops import logs
from .pipeline import Pipeline
from .policy.default import configured_policy
from .policy.errors import PolicyError
from .policy.model import Policy
from .settings import ConfigError, GatewaySettings, load_settings

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("gateway")

# The lenient pure-Python parser is a smuggling risk; the gateway runs only on aiohttp's llhttp-based one.
C_PARSER_MODULE = "aiohttp._http_parser"
GC_GEN0_THRESHOLD = 20_000


def ensure_c_parser() -> None:
    """Refuse to start on the pure-Python parser (e.g. AIOHTTP_NO_EXTENSIONS=1 or a build without C)."""
    if http.HttpRequestParser.__module__ != C_PARSER_MODULE:
        raise ConfigError("aiohttp's C HTTP parser is not in use (reinstall aiohttp with its C extensions)")


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a locked dependency on Linux
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def serve(settings: GatewaySettings, policy: Policy, *, worker: int = 0, reuse_port: bool = False) -> None:
    """Run one worker until SIGTERM/SIGINT, then drain gracefully; SIGHUP reloads the policy file."""
    _install_uvloop()
    asyncio.run(_serve(settings, policy, worker=worker, reuse_port=reuse_port))


class RunningGateway:
    """A started gateway: its collaborators and its public listener, stopped together."""

    def __init__(self, pipeline: Pipeline, listener: Listener) -> None:
        self.pipeline = pipeline
        self.listener = listener

    @property
    def port(self) -> int:
        return self.listener.port

    async def stop(self) -> None:
        """Stop accepting, drain connections (GATEWAY_SHUTDOWN_TIMEOUT_S), then close the upstream pool."""
        await self.listener.close(self.pipeline.settings.shutdown_timeout_s)
        await self.pipeline.stop()


def load_policy(settings: GatewaySettings) -> Policy:
    """The policy to start with: GATEWAY_POLICY_FILE validated in full (raises PolicyError), or the default."""
    return configured_policy(settings, settings.policy_file, os.environ)


async def open_gateway(
    settings: GatewaySettings,
    policy: Policy | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    reuse_port: bool = False,
) -> RunningGateway:
    """Start a gateway exactly as production does (the tests start theirs through here too)."""
    pipeline = Pipeline(settings, load_policy(settings) if policy is None else policy)
    await pipeline.start()
    limits = ConnectionLimits(
        header_timeout_s=settings.header_timeout_s, keepalive_timeout_s=settings.keepalive_timeout_s
    )
    listener = Listener(pipeline.handle, limits)
    host = settings.host if host is None else host
    port = settings.port if port is None else port
    try:
        await listener.open(host, port, reuse_port=reuse_port)
    except OSError as exc:
        await pipeline.stop()
        raise ListenError(f"{host}:{port} ({exc.strerror})") from None
    return RunningGateway(pipeline, listener)


async def _start_admin(settings: GatewaySettings, pipeline: Pipeline, worker: int) -> web.AppRunner | None:
    """Metrics on their own listener (GATEWAY_ADMIN_PORT, + worker index), never on the public port."""
    if settings.admin_port is None:
        return None
    from aiohttp import web  # only here: see ops/admin.py

    from .ops.admin import admin_app

    runner = web.AppRunner(admin_app(pipeline.metrics), handle_signals=False, access_log=None)
    await runner.setup()
    port = settings.admin_port + worker if settings.admin_port else 0
    host = settings.admin_host or settings.host
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ListenError(f"admin {host}:{port} ({exc.strerror})") from None
    return runner


def _tune_gc() -> None:
    """Move start-up objects out of the collector's way and collect young objects less often.

    Requests allocate short-lived containers that reference counting frees; the cyclic collector scanning
    them every 700 allocations was about 5 % of the gateway's CPU (bench/profile.py).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)


async def _serve(settings: GatewaySettings, policy: Policy, *, worker: int, reuse_port: bool) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the reload handler is in place: never a termination
    running = await open_gateway(settings, policy, reuse_port=reuse_port)
    try:
        admin = await _start_admin(settings, running.pipeline, worker)
    except ListenError:
        await running.stop()
        raise
    _tune_gc()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    reloads: set[asyncio.Task[bool]] = set()

    def reload() -> None:
        task = loop.create_task(running.pipeline.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    await stopping.wait()
    loop.remove_signal_handler(signal.SIGHUP)
    log.info("gateway draining (up to %.0f s)", settings.shutdown_timeout_s)
    running.pipeline.draining = True
    if settings.drain_delay_s:
        # Keep serving while load balancers notice /readyz failing, then stop accepting.
        await asyncio.sleep(settings.drain_delay_s)
    await running.stop()
    if admin is not None:
        await admin.cleanup()


class ListenError(Exception):
    """A listener could not be opened (port in use, address not available)."""


def _run_worker(settings: GatewaySettings, policy: Policy, worker: int, reuse_port: bool) -> int:
    """Serve until stopped; a port that cannot be bound is one clear line and exit code 1, not a traceback."""
    try:
        serve(settings, policy, worker=worker, reuse_port=reuse_port)
    except ListenError as exc:
        log.error("gateway: cannot listen: %s", exc)
        return 1
    return 0


def _worker(settings: GatewaySettings, policy: Policy, worker: int) -> None:
    logs.configure(settings.log_level)
    sys.exit(_run_worker(settings, policy, worker, reuse_port=True))


def main() -> int:
    try:
        settings = load_settings()
        ensure_c_parser()
    except ConfigError as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        policy = load_policy(settings)
    except PolicyError as exc:
        print(f"gateway: policy error: {exc}", file=sys.stderr)
        return 1
    logs.configure(settings.log_level)
    log.info("gateway starting on http://%s:%d (%d worker(s))", settings.host, settings.port, settings.workers)
    log.info(
        "policy: %s: %d routes, %d upstreams, %d issuers",
        policy.source,
        len(policy.routes),
        len(policy.upstreams),
        len(policy.issuers),
    )
    if settings.workers == 1:
        return _run_worker(settings, policy, 0, reuse_port=False)
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, args=(settings, policy, index), daemon=False)
        for index in range(settings.workers)
    ]
    # Workers inherit "ignore SIGHUP" through exec until their own loop handles it, so a reload signal during
    # start-up never terminates one (which would stop the whole replica).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for worker in workers:
        worker.start()

    def stop(signum: int, _frame: FrameType | None) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                worker.terminate()

    def forward(signum: int, _frame: FrameType | None) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, forward)
    # A worker that dies (e.g. cannot bind) stops the others: a replica runs whole or not at all, so an
    # orchestrator sees the failure instead of a silently degraded process.
    multiprocessing.connection.wait([worker.sentinel for worker in workers])
    stop(signal.SIGTERM, None)
    for worker in workers:
        worker.join()
    return max((worker.exitcode or 0) for worker in workers)
