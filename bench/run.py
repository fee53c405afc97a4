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
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

if not __package__:
    # Run as `python bench/run.py` (the Makefile's form): import `bench` as a package from the repo root
    # rather than its modules as top-level names from bench/.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import pools, service_suite, tokens
from bench.idle import measure_idle
from bench.procs import Processes, StartError, pinned
from bench.report import added, ratio, render_memory, render_micro, render_rows, render_targets
from bench.runner import Bench
from bench.stack import POLICY_ROUTES, PROXY_CORES, REPO, Server, Stack, Unavailable, expect_checks, expect_forwarded
from bench.tools import ensure_tools
from bench.wrk import Load, Request

RESULTS = REPO / "bench" / "results" / "latest.md"
MEMORY_TARGET_MB = 60
SERVICE_DURATION_S = 5
BUSY_LOAD = 1.0
LOG_TAIL_BYTES = 64 * 1024
PACED_DELAY_MS = 40  # 100 connections x one request per ~40 ms: about 2.5k requests/s offered


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
    gateway_minimal(bench, nginx, hs_pool)
    gateway_policy(bench, nginx, hs_pool)
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
    """The gateway as issue #17 judges it, every feature on: the access log, metrics, a 50-route policy file and
    the revocation check (a feed of 1,000 ended sessions). The headline row, the paced p99 and the memory."""
    titles = [
        ("taskgate gateway, every feature on, HS256, 1000-token pool", 64),
        ("taskgate gateway, every feature on, single token", 64),
        ("taskgate gateway, every feature on, 100 conns", 100),
        ("taskgate gateway, every feature on, 100 conns paced", 100),
    ]
    r = bench.results
    try:
        gateway = bench.stack.gateway_all_features(nginx)
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


def gateway_minimal(bench: Bench, nginx: Server, pool: list[Request]) -> None:
    """The same gateway with the optional features off (built-in default policy, no access log, no revocation
    feed): what those features cost, beside the row above."""
    title = "taskgate gateway, HS256, default policy, access log and revocation check off"
    try:
        gateway = bench.stack.gateway(nginx)
        expect_forwarded(gateway, pool[0])
    except Unavailable as exc:
        bench.na([(title, 64)], str(exc))
        return
    row = bench.case("gateway-minimal", title, gateway, lambda: pool, ratios=True)
    all_on = bench.results.get("gateway")
    row.compare = f"every feature on × {ratio(all_on, bench.results['gateway-minimal'])} of this"
    bench.stack.stop(gateway)


def gateway_policy(bench: Bench, nginx: Server, pool: list[Request], routes: int = POLICY_ROUTES) -> None:
    """A policy file of 50 routes, the task API last: routing must cost what the default policy's does."""
    title = f"taskgate gateway, HS256, {routes}-route policy file (access log and revocation check off)"
    try:
        gateway = bench.stack.gateway(nginx, policy_routes=routes)
        expect_forwarded(gateway, pool[0])
        expect_checks(gateway, pools.rejections(bench.stack.jwt_secret))
    except Unavailable as exc:
        bench.na([(title, 64)], str(exc))
        return
    row = bench.case(f"gateway-policy{routes}", title, gateway, lambda: pool, ratios=True)
    policy_row = bench.results[f"gateway-policy{routes}"]
    row.compare = f"× {ratio(policy_row, bench.results.get('gateway-minimal'))} of the default policy"
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
    row.compare = f"× {ratio(r['eddsa-single'], r['eddsa'])} of the EdDSA pool"
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


def micro_costs() -> dict[str, float]:
    """pyjwt and the cached verdict (bench/tokens_micro.py), the assertion's steps (bench/assertion_micro.py), and
    the checks as a whole without sockets (bench/pipeline_micro.py)."""
    costs: dict[str, float] = {}
    for module in ("bench.tokens_micro", "bench.assertion_micro", "bench.pipeline_micro"):
        out = subprocess.run(
            pinned(PROXY_CORES, [sys.executable, "-m", module, "--json"]),
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        ).stdout
        costs.update(json.loads(out))
    return costs


def _version(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (proc.stdout + proc.stderr).strip().splitlines()[0] if (proc.stdout + proc.stderr).strip() else "?"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


@dataclass(frozen=True)
class Selection:
    """Which parts of the bench run: the forward path (references, gateway, memory, pyjwt) and/or the task
    service suite, on which databases."""

    forward: bool
    service: bool
    databases: tuple[str, ...]
    service_load: Load


def render(bench: Bench, selection: Selection, costs: dict[str, float], started: float, load_before: str) -> str:
    r = bench.results
    load, service_load = bench.load, selection.service_load
    timing = []
    if selection.forward:
        timing.append(
            f"forward path {load.warmup_s} s warm-up + {load.duration_s} s measured per case"
            f"{f' (best of {load.repeat})' if load.repeat > 1 else ''}, proxy on core 0, wrk and nginx on core 1"
        )
    if selection.service:
        timing.append(
            f"task service {service_load.warmup_s} s + {service_load.duration_s} s"
            f"{f' (best of {service_load.repeat})' if service_load.repeat > 1 else ''}, the app under test on "
            "core 0, wrk, the gateway in front of it and PostgreSQL on core 1"
        )
    header = [
        "# taskgate bench results",
        "",
        f"- run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
        f"{time.time() - started:.0f} s in all; wrk -t1; " + "; ".join(timing),
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
        *(
            [
                "- paced = after each answer a connection waits a random 0 to "
                f"{2 * PACED_DELAY_MS} ms (mean {PACED_DELAY_MS} ms) before its next request: latency below "
                "saturation, without the connections marching in lockstep"
            ]
            if selection.forward
            else []
        ),
        "",
    ]
    sections = []
    if selection.forward:
        sections += [
            render_rows(bench.rows, r.get("haproxy"), r.get("baseline")),
            render_targets(r, bench.memory, MEMORY_TARGET_MB),
            render_memory("taskgate gateway", bench.memory, bench.memory_reason, MEMORY_TARGET_MB),
            render_micro(costs),
        ]
    if selection.service:
        sections += [service_suite.render(bench.rows, r), service_suite.render_targets(r, selection.databases)]
    return "\n".join([*header, *(part + "\n" for part in sections)])


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


def _selection(args: argparse.Namespace) -> tuple[Load, Selection]:
    # Gateway assertions live 30 s and are signed before each wrk run.
    load = Load(warmup_s=args.warmup, duration_s=min(args.duration, 25), repeat=min(max(args.repeat, 1), 3))
    service_load = Load(warmup_s=args.warmup, duration_s=min(args.service_duration, 25), repeat=load.repeat)
    if args.quick:
        load = service_load = Load(warmup_s=1, duration_s=3)
    parts = set(args.only.split(",")) if args.only else {"forward", "service"}
    databases = tuple(d for d in service_suite.DATABASES if d in args.db.split(","))
    if not parts <= {"forward", "service"} or not databases:
        raise SystemExit("--only takes forward and/or service; --db sqlite and/or postgresql")
    return load, Selection("forward" in parts, "service" in parts, databases, service_load)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per forward-path case (max 25)")
    parser.add_argument(
        "--service-duration", type=int, default=SERVICE_DURATION_S, help="measured seconds per task-service case"
    )
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per case")
    parser.add_argument("--quick", action="store_true", help="1 s warm-up, 3 s measured: a smoke run")
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="measured runs per case, best kept; two by default, because single runs on these shared machines "
        "drift by 10-15 %% from one case to the next",
    )
    parser.add_argument(
        "--only",
        help="run only these parts, comma-separated: forward (references, gateway, memory, pyjwt) and/or service "
        "(task service vs its floor and the SQLModel reference, directly and through the gateway)",
    )
    parser.add_argument(
        "--db", default="sqlite,postgresql", help="the task service suite's databases: sqlite and/or postgresql"
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for the run and every server it starts (e.g. -10 as root on a busy machine)",
    )
    args = parser.parse_args()
    load, selection = _selection(args)
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
    costs: dict[str, float] = {}
    ok = False
    try:
        if selection.forward:
            print(f"minting {pools.POOL_SIZE} HS256 and {pools.POOL_SIZE} EdDSA tokens …", flush=True)
            users = [tokens.user_id(i) for i in range(pools.POOL_SIZE)]
            hs_pool = pools.bearer_pool([tokens.hs256_token(stack.jwt_secret, u) for u in users])
            eddsa_pool = pools.bearer_pool([tokens.eddsa_token(stack.eddsa, u) for u in users])
            nginx = stack.nginx()
            forward_path(bench, nginx, hs_pool, eddsa_pool)
            stack.stop(nginx)
        if selection.service:
            service_suite.run(bench, selection.databases, selection.service_load)
        if selection.forward:
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
    text = render(bench, selection, costs, started, load_before)
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
