"""`make bench`: every case side by side in one run, printed as one table and kept in bench/results/.

Bounded: each wrk run has a fixed duration and a timeout, each start a deadline; every process this run
started is stopped on exit, including on Ctrl-C or SIGTERM. The method is in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

if not __package__:
    # Run as `python bench/run.py` (the Makefile's form): import `bench` as a package from the repo root
    # rather than its modules as top-level names from bench/.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import pools, tokens
from bench.idle import Memory, measure_idle
from bench.procs import Processes, StartError, cpu_seconds, pinned
from bench.report import Row, added, ratio, render_memory, render_micro, render_rows, render_targets
from bench.stack import PROXY_CORES, REPO, Server, Stack, Unavailable, expect, expect_checks, expect_forwarded
from bench.tools import ensure_tools
from bench.wrk import Load, Request, WrkResult, measure

RESULTS = REPO / "bench" / "results" / "latest.md"
MEMORY_TARGET_MB = 80
SEED_TASKS_PER_USER = 10
BUSY_LOAD = 1.0
LOG_TAIL_BYTES = 64 * 1024
PACED_DELAY_MS = 40  # 100 connections x one request per ~40 ms: about 2.5k requests/s offered


@dataclass
class Bench:
    stack: Stack
    load: Load
    rows: list[Row] = field(default_factory=list)
    results: dict[str, WrkResult] = field(default_factory=dict)
    memory: Memory | None = None
    memory_reason: str = ""

    def case(
        self,
        key: str,
        title: str,
        server: Server,
        requests: Callable[[], Sequence[Request]],
        *,
        connections: int = 64,
        delay_ms: int | None = None,
        ratios: bool = False,
    ) -> Row:
        load = Load(connections, self.load.warmup_s, self.load.duration_s, delay_ms, self.load.repeat)
        print(f"  {title} …", end="", flush=True)
        result = measure(server.url, requests, load, self.stack.run_dir, lambda: cpu_seconds(server.process))
        print(
            f" {result.rps:,.0f} req/s, p99 {result.p99_us / 1000:.2f} ms, {result.errors} errors, "
            f"{result.cpu_us_per_request or 0:.0f} µs CPU/request",
            flush=True,
        )
        self.results[key] = result
        row = Row(title, connections, result, ratios=ratios)
        self.rows.append(row)
        return row

    def na(self, titles: Sequence[tuple[str, int]], reason: str) -> None:
        print(f"  n/a: {reason}", flush=True)
        self.rows += [Row(title, conns, na_reason=reason) for title, conns in titles]


def forward_path(bench: Bench, nginx: Server, hs_pool: list[Request], eddsa_pool: list[Request]) -> None:
    stack, r = bench.stack, bench.results

    print("references", flush=True)
    bench.case("nginx", "nginx upstream alone (no proxy)", nginx, lambda: hs_pool, ratios=True)
    bench.case("nginx-c100", "nginx upstream alone, 100 conns", nginx, lambda: hs_pool, connections=100)
    bench.case(
        "nginx-paced",
        "nginx upstream alone, 100 conns paced",
        nginx,
        lambda: hs_pool,
        connections=100,
        delay_ms=PACED_DELAY_MS,
    )
    aio = stack.fixed(uvloop=True)
    bench.case("fixed", "aiohttp server alone, fixed answer (uvloop)", aio, lambda: hs_pool, ratios=True)
    stack.stop(aio)
    bare = stack.bare(nginx)
    expect_forwarded(bare, hs_pool[0])
    bench.case("bare", "taskgate's connection code, no checks (floor)", bare, lambda: hs_pool, ratios=True)
    stack.stop(bare)

    haproxy_cases(bench, nginx, hs_pool)

    baseline = stack.baseline(nginx)
    expect_forwarded(baseline, hs_pool[0])
    expect_checks(baseline, pools.rejections(stack.jwt_secret))
    bench.case("baseline", "straightforward aiohttp proxy (baseline), HS256", baseline, lambda: hs_pool, ratios=True)
    row = bench.case(
        "baseline-paced",
        "baseline, 100 conns paced",
        baseline,
        lambda: hs_pool,
        connections=100,
        delay_ms=PACED_DELAY_MS,
    )
    row.compare = added(r["baseline-paced"], r["nginx-paced"]) + " over nginx"
    stack.stop(baseline)

    print("gateway", flush=True)
    gateway_hs256(bench, nginx, hs_pool)
    gateway_policy(bench, nginx, hs_pool)
    gateway_access_log(bench, nginx, hs_pool)
    gateway_eddsa(bench, nginx, eddsa_pool, hs_pool)
    gateway_workers(bench, nginx, hs_pool)


def haproxy_cases(bench: Bench, nginx: Server, pool: list[Request]) -> None:
    stack, r = bench.stack, bench.results
    titles = [
        ("HAProxy 2.6 without checks (proxying alone)", 64),
        ("HAProxy 2.6, same checks, HS256", 64),
        ("HAProxy, 100 conns", 100),
        ("HAProxy, 100 conns paced", 100),
    ]
    try:
        plain = stack.haproxy(nginx, plain=True)
    except StartError as exc:
        bench.na(titles, f"HAProxy did not start (jwt_verify needs 2.5+): {str(exc).splitlines()[-1][:100]}")
        return
    expect_forwarded(plain, pool[0])
    bench.case("haproxy-plain", titles[0][0], plain, lambda: pool, ratios=True)
    stack.stop(plain)

    haproxy = stack.haproxy(nginx)
    expect_forwarded(haproxy, pool[0])
    expect_checks(haproxy, pools.rejections(stack.jwt_secret))
    bench.case("haproxy", titles[1][0], haproxy, lambda: pool, ratios=True)
    row = bench.case("haproxy-c100", titles[2][0], haproxy, lambda: pool, connections=100)
    row.compare = added(r["haproxy-c100"], r["nginx-c100"]) + " over nginx"
    row = bench.case("haproxy-paced", titles[3][0], haproxy, lambda: pool, connections=100, delay_ms=PACED_DELAY_MS)
    row.compare = added(r["haproxy-paced"], r["nginx-paced"]) + " over nginx"
    stack.stop(haproxy)


def gateway_hs256(bench: Bench, nginx: Server, pool: list[Request]) -> None:
    titles = [
        ("taskgate gateway, HS256, 1000-token pool", 64),
        ("taskgate gateway, HS256, single token", 64),
        ("taskgate gateway, 100 conns", 100),
        ("taskgate gateway, 100 conns paced", 100),
    ]
    r = bench.results
    try:
        gateway = bench.stack.gateway(nginx)
        expect_forwarded(gateway, pool[0])
        expect_checks(gateway, pools.rejections(bench.stack.jwt_secret))
    except Unavailable as exc:
        bench.na(titles, str(exc))
        bench.memory_reason = str(exc)
        return
    bench.case("gateway", titles[0][0], gateway, lambda: pool, ratios=True)
    row = bench.case("gateway-single", titles[1][0], gateway, lambda: pools.single(pool), ratios=True)
    row.compare = f"× {ratio(r['gateway-single'], r['gateway'])} of the pool"
    row = bench.case("gateway-c100", titles[2][0], gateway, lambda: pool, connections=100)
    row.compare = added(r["gateway-c100"], r["nginx-c100"]) + " over nginx"
    row = bench.case("gateway-paced", titles[3][0], gateway, lambda: pool, connections=100, delay_ms=PACED_DELAY_MS)
    row.compare = added(r["gateway-paced"], r["nginx-paced"]) + " over nginx"
    print("  memory with idle keep-alive connections …", flush=True)
    bench.memory = measure_idle(gateway, pool)
    bench.stack.stop(gateway)


def gateway_policy(bench: Bench, nginx: Server, pool: list[Request], routes: int = 50) -> None:
    """A policy file of 50 routes, the task API last: routing must cost what the default policy's does."""
    title = f"taskgate gateway, HS256, {routes}-route policy file"
    try:
        gateway = bench.stack.gateway(nginx, policy_routes=routes)
        expect_forwarded(gateway, pool[0])
        expect_checks(gateway, pools.rejections(bench.stack.jwt_secret))
    except Unavailable as exc:
        bench.na([(title, 64)], str(exc))
        return
    row = bench.case(f"gateway-policy{routes}", title, gateway, lambda: pool, ratios=True)
    row.compare = f"× {ratio(bench.results[f'gateway-policy{routes}'], bench.results.get('gateway'))} of the default"
    bench.stack.stop(gateway)


def gateway_access_log(bench: Bench, nginx: Server, pool: list[Request]) -> None:
    """The default configuration logs every request; what that costs, next to the log-free rows."""
    title = "taskgate gateway, HS256, access log on (default)"
    try:
        gateway = bench.stack.gateway(nginx, access_log=True)
        expect_forwarded(gateway, pool[0])
    except Unavailable as exc:
        bench.na([(title, 64)], str(exc))
        return
    row = bench.case("gateway-log", title, gateway, lambda: pool, ratios=True)
    row.compare = f"× {ratio(bench.results['gateway-log'], bench.results.get('gateway'))} of logging off"
    bench.stack.stop(gateway)


def gateway_eddsa(bench: Bench, nginx: Server, pool: list[Request], hs_pool: list[Request]) -> None:
    """EdDSA against HS256 on the same process, measured back to back: cases minutes apart drift by more than
    the 10 % the target allows on these shared machines, so the HS256 rows of another process are no yardstick."""
    titles = [
        ("taskgate gateway, EdDSA via JWKS, 1000-token pool", 64),
        ("same process, HS256 1000-token pool", 64),
        ("taskgate gateway, EdDSA, single token", 64),
    ]
    r = bench.results
    try:
        gateway = bench.stack.gateway(nginx, jwks=nginx)
        expect_forwarded(gateway, pool[0])
        expect_forwarded(gateway, hs_pool[0])
    except Unavailable as exc:
        bench.na(titles, f"EdDSA/JWKS: {exc}")
        return
    bench.case("eddsa", titles[0][0], gateway, lambda: pool, ratios=True)
    row = bench.case("eddsa-hs256", titles[1][0], gateway, lambda: hs_pool, ratios=True)
    row.compare = f"EdDSA pool × {ratio(r['eddsa'], r['eddsa-hs256'])} of this"
    row = bench.case("eddsa-single", titles[2][0], gateway, lambda: pools.single(pool), ratios=True)
    row.compare = f"× {ratio(r['eddsa-single'], r.get('gateway-single'))} of HS256"
    bench.stack.stop(gateway)


def gateway_workers(bench: Bench, nginx: Server, pool: list[Request]) -> None:
    """Both placements span cores 0-1, which wrk and nginx share: see docs/performance.md."""
    titles = [("taskgate gateway, 1 worker on cores 0-1", 64), ("taskgate gateway, GATEWAY_WORKERS=2, cores 0-1", 64)]
    r = bench.results
    try:
        one = bench.stack.gateway(nginx, cores="0,1")
        expect_forwarded(one, pool[0])
    except Unavailable as exc:
        bench.na(titles, str(exc))
        return
    bench.case("w1", titles[0][0], one, lambda: pool)
    bench.stack.stop(one)
    try:
        two = bench.stack.gateway(nginx, workers=2, cores="0,1")
        expect_forwarded(two, pool[0])
    except Unavailable as exc:
        bench.na(titles[1:], str(exc))
        return
    row = bench.case("w2", titles[1][0], two, lambda: pool)
    row.compare = f"× {ratio(r['w2'], r['w1'])} of 1 worker"
    bench.stack.stop(two)


def end_to_end(bench: Bench) -> None:
    stack, r = bench.stack, bench.results
    titles = [
        ("task service direct: list (SQLite)", 64),
        ("via gateway: list", 64),
        ("task service direct: create (SQLite)", 64),
        ("via gateway: create", 64),
    ]
    print("end to end", flush=True)
    try:
        service = stack.task_service()
        _seed(stack, service)
        gateway = stack.gateway(service)
        hs_tokens = [tokens.hs256_token(stack.jwt_secret, tokens.user_id(i)) for i in range(pools.E2E_USERS)]
        expect(gateway, pools.bearer_pool(hs_tokens)[0], 200)
    except Unavailable as exc:
        bench.na(titles, str(exc))
        return
    secret = stack.internal_secret
    bench.case("e2e-list-direct", titles[0][0], service, lambda: pools.asserted(secret, "GET", pools.E2E_USERS))
    row = bench.case("e2e-list-gw", titles[1][0], gateway, lambda: pools.bearer_pool(hs_tokens))
    row.compare = f"× {ratio(r['e2e-list-gw'], r['e2e-list-direct'])} of direct; " + added(
        r["e2e-list-gw"], r["e2e-list-direct"]
    )
    bench.case("e2e-create-direct", titles[2][0], service, lambda: pools.asserted(secret, "POST", pools.E2E_USERS))
    row = bench.case("e2e-create-gw", titles[3][0], gateway, lambda: pools.bearer_creates(hs_tokens))
    row.compare = f"× {ratio(r['e2e-create-gw'], r['e2e-create-direct'])} of direct; " + added(
        r["e2e-create-gw"], r["e2e-create-direct"]
    )
    stack.stop(gateway)
    stack.stop(service)


def _seed(stack: Stack, service: Server) -> None:
    """A few tasks per user, so the list case returns rows rather than an empty array."""
    for _ in range(SEED_TASKS_PER_USER):
        for req in pools.asserted(stack.internal_secret, "POST", pools.E2E_USERS):
            expect(service, req, 201)


def micro_costs() -> dict[str, float]:
    out = subprocess.run(
        pinned(PROXY_CORES, [sys.executable, "-m", "bench.tokens_micro", "--json"]),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout
    costs: dict[str, float] = json.loads(out)
    return costs


def _version(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (proc.stdout + proc.stderr).strip().splitlines()[0] if (proc.stdout + proc.stderr).strip() else "?"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def render(bench: Bench, costs: dict[str, float], started: float, load_before: str) -> str:
    r = bench.results
    header = [
        "# taskgate bench results",
        "",
        f"- run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
        f"{time.time() - started:.0f} s in all; {bench.load.warmup_s} s warm-up + {bench.load.duration_s} s "
        f"measured per case{f' (best of {bench.load.repeat})' if bench.load.repeat > 1 else ''}; "
        "wrk -t1, one core each side (proxy on core 0; wrk, nginx, task service on core 1)",
        f"- machine: {os.cpu_count()} × {_cpu_model()}; load average before/after: {load_before} / "
        f"{Path('/proc/loadavg').read_text().split()[0]}",
        f"- {_version(['haproxy', '-v'])}; {_version(['nginx', '-v'])}; {_version(['wrk', '-v'])}; "
        f"Python {platform.python_version()}",
        *(
            [
                f"- **warning: the machine was busy (load average {load_before}) — absolute figures are low and noisy; "
                "compare the CPU µs/request columns**"
            ]
            if float(load_before) > BUSY_LOAD
            else []
        ),
        *([f"- run with niceness {os.nice(0)}"] if os.nice(0) else []),
        "- paced = after each answer a connection waits a random 0 to "
        f"{2 * PACED_DELAY_MS} ms (mean {PACED_DELAY_MS} ms) before its next request: latency below saturation, "
        "without the connections marching in lockstep",
        "",
    ]
    return "\n".join(
        [
            *header,
            render_rows(bench.rows, r.get("haproxy"), r.get("baseline")),
            "",
            render_targets(r, bench.memory, MEMORY_TARGET_MB),
            "",
            render_memory("taskgate gateway", bench.memory, bench.memory_reason, MEMORY_TARGET_MB),
            "",
            render_micro(costs),
            "",
        ]
    )


def _raise_fd_limit() -> None:
    """1,000 idle connections plus wrk's and the upstream pools need more than the usual 1024 fds."""
    wanted = 16384
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _keep_logs(run_dir: Path) -> None:
    """Each server's output, for explaining an n/a row after the run's temp dir is gone."""
    logs = RESULTS.parent / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    for log in run_dir.glob("*.log"):
        # The tail only: the access-log case writes a line per request.
        with log.open("rb") as fh:
            fh.seek(max(0, log.stat().st_size - LOG_TAIL_BYTES))
            (logs / log.name).write_bytes(fh.read())


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per case (max 25)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per case")
    parser.add_argument("--quick", action="store_true", help="1 s warm-up, 3 s measured: a smoke run")
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="measured runs per case, best kept (each run adds about 5 minutes); two by default, because single "
        "10-second runs on these shared machines drift by 10-15 %% from one case to the next",
    )
    parser.add_argument("--no-e2e", action="store_true", help="skip the task-service cases")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for the run and every server it starts (e.g. -10 as root on a busy machine)",
    )
    args = parser.parse_args()
    # Gateway assertions live 30 s and are signed before each wrk run.
    load = Load(warmup_s=args.warmup, duration_s=min(args.duration, 25), repeat=min(max(args.repeat, 1), 3))
    if args.quick:
        load = Load(warmup_s=1, duration_s=3)
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("bench needs 2 cores: one for the proxy, one for wrk and the upstream")
    ensure_tools()
    if args.nice:
        os.nice(args.nice)  # inherited by every process started below
    _raise_fd_limit()
    os.sched_setaffinity(0, {1})
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    started = time.time()
    load_before = Path("/proc/loadavg").read_text().split()[0]
    run_dir = Path(tempfile.mkdtemp(prefix="taskgate-bench-"))
    run_dir.chmod(0o755)  # nginx's worker (an unprivileged user) reads the JWKS file from here
    procs = Processes(run_dir)
    stack = Stack(run_dir, procs)
    bench = Bench(stack, load)
    ok = False
    try:
        print(f"minting {pools.POOL_SIZE} HS256 and {pools.POOL_SIZE} EdDSA tokens …", flush=True)
        users = [tokens.user_id(i) for i in range(pools.POOL_SIZE)]
        hs_pool = pools.bearer_pool([tokens.hs256_token(stack.jwt_secret, u) for u in users])
        eddsa_pool = pools.bearer_pool([tokens.eddsa_token(stack.eddsa, u) for u in users])
        nginx = stack.nginx()
        forward_path(bench, nginx, hs_pool, eddsa_pool)
        if not args.no_e2e:
            end_to_end(bench)
        print("pyjwt micro-benchmark …", flush=True)
        costs = micro_costs()
        ok = True
    finally:
        procs.stop_all()
        _keep_logs(run_dir)
        if ok:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            print(f"logs kept in {run_dir}", file=sys.stderr)
    text = render(bench, costs, started, load_before)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print("\n" + text)
    print(f"written to {RESULTS.relative_to(REPO)} (server logs in {(RESULTS.parent / 'logs').relative_to(REPO)}/)")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: every process this run started has been stopped", file=sys.stderr)
        raise SystemExit(130) from None
