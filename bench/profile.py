"""Where the time goes: py-spy samples a server while wrk drives it.

`python bench/profile.py` (py-spy must be installed in the venv: `.venv/bin/pip install py-spy`; it is a
bench-only tool, not a project dependency) samples the gateway, every feature on, on the HS256 pool.
`--service list|create` samples the task service alone, driven directly with gateway assertions
(`--app floor|plain` samples one of the service suite's references instead); `--e2e list|create` puts the
gateway in front of the task service and samples both. Writes the collapsed stacks and a summary of the top
frames (self = the sampled leaf, total = anywhere on the stack) to bench/results/.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if not __package__:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import pools, service_suite, tokens
from bench.procs import Processes, cpu_seconds, listening_pids
from bench.stack import REPO, Server, Stack, expect_forwarded
from bench.tools import ensure_tools
from bench.wrk import Load, Request, measure

RESULTS = REPO / "bench" / "results"
TOP = 25
# Frames of threads that wait rather than work, which py-spy still reports: a thread parked in a pool
# (anyio's, aiosqlite's), the event loop in epoll with nothing to do, a thread waiting for the GIL.
WAITING_FRAMES = (
    "Condition.wait (",
    "Event.wait (",
    "Queue.get (",
    "Lock.acquire (",
    "_queue_SimpleQueue_get (",
    "epoll_wait (",
    "epoll_pwait (",
    "take_gil (",
)


# Where a FastAPI app's samples go: each sample is charged to the innermost frame that matches one of these
# (checked from the leaf outwards), so the JSON encoder called by the renderer counts as rendering and the
# logging module called by the middleware as logs; rules are tried in this order for each frame.
SERVICE_CATEGORIES = (
    ("gateway assertion / token check", ("task_service/assertion.py", "jwt/", "fastapi/security/")),
    ("request body: JSON and validation", ("task_service/request_body.py", "Request.body (", "Request.json (")),
    (
        "database: SQLAlchemy, the driver, SQLite",
        (
            "sqlalchemy/",
            "sqlmodel/",
            "task_service/sqlite_loop.py",
            "aiosqlite/",
            "asyncpg/",
            "task_service/store.py",
            "task_service/idempotency.py",
            "task_service/db.py",
            "_connection_worker_thread (",
        ),
    ),
    (
        "rendering the answer",
        ("task_service/render.py", "task_service/schemas.py", "fastapi/encoders.py", "serialize_response (", "json/"),
    ),
    ("logs and metrics", ("task_service/observability.py", "logging/", "prometheus_client/")),
    ("HTTP server (uvicorn, httptools)", ("uvicorn/protocols/",)),
    ("dependency resolution and parameters", ("fastapi/dependencies/",)),
    ("routing, middleware, handler (FastAPI, Starlette)", ("fastapi/", "starlette/", "task_service/api.py")),
    ("event loop and the rest", ("",)),
)


# The same for the gateway. The markers of system calls match only with --native (C frames); without it their
# time is charged to the Python frame that made the call.
GATEWAY_CATEGORIES = (
    ("system calls: read and write on both legs", ("write (libc", "read (libc", "getrandom (libc")),
    ("the assertion: claims, base64url, HMAC-SHA256, jti", ("gateway/policy/assertion.py", "gateway/policy/ids.py")),
    ("access log", ("gateway/ops/logs.py",)),
    ("metrics", ("gateway/ops/metrics.py",)),
    ("token: bearer, verified-token cache, revocation check", ("gateway/auth/",)),
    (
        "policy: route, method, claim rules, CORS",
        ("gateway/policy/match.py", "gateway/policy/claims.py", "gateway/policy/paths.py", "gateway/policy/cors.py"),
    ),
    ("header allow-lists both ways, request ids", ("gateway/policy/headers.py",)),
    ("framing the upstream request and the answer", ("Upstream.frame (", "gateway/http/wire.py")),
    ("aiohttp's C parsers, headers and body streams", ("_http_parser", "llhttp", "aiohttp/", "multidict", "yarl/")),
    (
        "upstream pool and connection bookkeeping",
        ("gateway/http/upstream_pool.py", "gateway/http/upstream_connection.py", "gateway/http/slots.py"),
    ),
    ("client connection, pipeline, asyncio and the rest", ("",)),
)

Categories = tuple[tuple[str, tuple[str, ...]], ...]


def categorise(collapsed: str, cpu_us: float, categories: Categories = SERVICE_CATEGORIES) -> str:
    """The busy samples of a server by what they were doing, as shares and CPU µs per request."""
    charged: collections.Counter[str] = collections.Counter()
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        if not stack or any(frame.startswith(WAITING_FRAMES) for frame in frames):
            continue
        charged[_category(frames, categories)] += int(count_text)
    samples = sum(charged.values()) or 1
    lines = ["| where | share | µs per request |", "|---|---:|---:|"]
    for name, _ in categories:
        if charged[name]:
            lines.append(f"| {name} | {100 * charged[name] / samples:.1f} % | {cpu_us * charged[name] / samples:.1f} |")
    return "\n".join(lines)


def _category(frames: list[str], categories: Categories) -> str:
    for frame in reversed(frames):
        for name, markers in categories[:-1]:
            if any(marker in frame for marker in markers):
                return name
    return categories[-1][0]


def _py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def summarise(collapsed: str, top: int = TOP) -> str:
    """Self and inclusive sample shares per frame from py-spy's raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    waiting = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        if any(frame.startswith(WAITING_FRAMES) for frame in frames):
            waiting += count
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [
        f"{samples} busy samples ({waiting} of threads waiting on a lock, a queue, epoll or the GIL left out)",
        "",
        "| self % | total % | frame |",
        "|---:|---:|---|",
    ]
    for frame, count in own.most_common(top):
        lines.append(f"| {100 * count / samples:.1f} | {100 * total[frame] / samples:.1f} | `{frame}` |")
    lines += ["", "| total % | frame |", "|---:|---|"]
    for frame, count in total.most_common(top):
        lines.append(f"| {100 * count / samples:.1f} | `{frame}` |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    """What wrk drives, and which servers py-spy samples meanwhile."""

    drive: Server
    requests: Callable[[], list[Request]]
    sampled: list[Server]


def _forward_path(stack: Stack, single: bool) -> Target:
    users = [tokens.user_id(i) for i in range(pools.POOL_SIZE)]
    pool = pools.bearer_pool([tokens.hs256_token(stack.jwt_secret, u) for u in users])
    if single:
        pool = pools.single(pool)
    nginx = stack.nginx()
    gateway = stack.gateway_all_features(nginx)
    expect_forwarded(gateway, pool[0])
    return Target(gateway, lambda: pool, [gateway])


def _end_to_end(stack: Stack, operation: str) -> Target:
    clients = service_suite.Clients.of(stack)
    service = service_suite.prepared(clients, "service", stack.sqlite_url("service"))
    gateway = service_suite.gateway_in_front(clients, service)
    pool = clients.requests("gateway", operation)()
    return Target(gateway, lambda: pool, [gateway, service])


def _service(stack: Stack, operation: str, app: str) -> Target:
    clients = service_suite.Clients.of(stack)
    server = service_suite.prepared(clients, app, stack.sqlite_url(app))
    return Target(server, clients.requests(app, operation), [server])


def _record(py_spy: str, server: Server, seconds: int, native: bool) -> tuple[subprocess.Popen[bytes], Path]:
    out = RESULTS / f"profile-{server.name}.collapsed"
    pid = listening_pids(server.process, server.port)[0]
    argv = [py_spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200"]
    argv += ["--format", "raw", "--nolineno", "--output", str(out), *(["--native"] if native else [])]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--single", action="store_true", help="one token (cache hits) instead of the pool")
    parser.add_argument("--native", action="store_true", help="include C frames (slower sampling)")
    parser.add_argument("--e2e", choices=["list", "create"], help="gateway in front of the task service (both sampled)")
    parser.add_argument("--service", choices=["list", "create"], help="the task service alone, driven directly")
    parser.add_argument("--app", choices=["service", "floor", "plain"], default="service", help="with --service")
    args = parser.parse_args()
    py_spy = _py_spy()
    ensure_tools()
    run_dir = Path(tempfile.mkdtemp(prefix="taskgate-profile-"))
    run_dir.chmod(0o755)
    procs = Processes(run_dir)
    stack = Stack(run_dir, procs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    sections = []
    try:
        if args.service:
            target = _service(stack, args.service, args.app)
        elif args.e2e:
            target = _end_to_end(stack, args.e2e)
        else:
            target = _forward_path(stack, args.single)
        measure(target.drive.url, target.requests, Load(warmup_s=0, duration_s=2), run_dir)  # warm caches
        spies = [(server, *_record(py_spy, server, args.seconds, args.native)) for server in target.sampled]
        before = {server.name: cpu_seconds(server.process) for server in target.sampled}
        result = measure(target.drive.url, target.requests, Load(warmup_s=0, duration_s=args.seconds + 1), run_dir)
        for server, spy, out in spies:
            _, err = spy.communicate(timeout=60)
            if spy.returncode != 0:
                raise SystemExit(f"py-spy failed: {err.decode(errors='replace').strip()[-300:]}")
            cpu_us = (cpu_seconds(server.process) - before[server.name]) / max(result.requests, 1) * 1e6
            collapsed = out.read_text()
            section = f"## {server.name}: {cpu_us:.0f} µs CPU/request\n\n"
            categories = GATEWAY_CATEGORIES if server.name.startswith("gateway") else SERVICE_CATEGORIES
            section += categorise(collapsed, cpu_us, categories) + "\n\n"
            sections.append(section + summarise(collapsed))
    finally:
        procs.stop_all()
        shutil.rmtree(run_dir, ignore_errors=True)
    summary = (
        f"driving {target.drive.name}: {result.rps:,.0f} req/s, p99 {result.p99_us / 1000:.2f} ms, "
        f"{result.errors} errors while sampled (py-spy pauses each process to sample, which costs some "
        "throughput)\n\n" + "\n\n".join(sections)
    )
    (RESULTS / "profile.md").write_text(summary + "\n")
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
