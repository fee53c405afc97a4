"""Running wrk for one case and reading its result line (printed by lua/requests.lua's done())."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.procs import core_times, pinned

LUA = Path(__file__).with_name("lua") / "requests.lua"
LOAD_CORE = 1
WRK_CORES = str(LOAD_CORE)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: str | None = None

    def line(self) -> str:
        fields = [self.method, self.path, self.body or "-"]
        fields += [f"{name}: {value}" for name, value in self.headers.items()]
        if any("\t" in f or "\n" in f for f in fields):
            raise ValueError("request fields must not contain tabs or newlines")
        return "\t".join(fields)


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_us: int
    p50_us: int
    p99_us: int
    errors: int
    cpu_s: float | None = None  # CPU the server under test used during the measured run
    load_core_busy: float | None = None  # share of core 1 (wrk, nginx, anything else) busy meanwhile
    behind_cpu_s: float | None = None  # CPU of what serves the server under test (database, task service)

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6)

    @property
    def cpu_us_per_request(self) -> float | None:
        """Cost per request independent of how much of its core the server got: robust to neighbours."""
        if self.cpu_s is None or self.requests == 0:
            return None
        return self.cpu_s / self.requests * 1e6

    @property
    def behind_cpu_us_per_request(self) -> float | None:
        if self.behind_cpu_s is None or self.requests == 0:
            return None
        return self.behind_cpu_s / self.requests * 1e6

    @property
    def core_share(self) -> float | None:
        """Fraction of one core the server used; well below 1 under saturation means it was starved."""
        return None if self.cpu_s is None else self.cpu_s / (self.duration_us / 1e6)


@dataclass(frozen=True)
class Load:
    """How hard to push: connections, warm-up and measured seconds, optional per-connection pacing."""

    connections: int = 64
    warmup_s: int = 2
    duration_s: int = 10
    delay_ms: int | None = None
    repeat: int = 1  # measured runs per case; the best is kept (neighbours only ever slow a run down)


def _run(url: str, requests_file: Path, connections: int, seconds: int, delay_ms: int | None) -> WrkResult:
    argv = pinned(
        WRK_CORES,
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency", "-s", str(LUA), url],
    )
    env = {"BENCH_REQUESTS": str(requests_file)}
    if delay_ms is not None:
        env["BENCH_DELAY_MS"] = str(delay_ms)
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env, timeout=seconds + 30).stdout
    for line in out.splitlines():
        if line.startswith("BENCH_RESULT "):
            data = json.loads(line.removeprefix("BENCH_RESULT "))
            errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
            return WrkResult(data["requests"], data["duration_us"], data["p50_us"], data["p99_us"], errors)
    raise RuntimeError(f"wrk printed no result:\n{out}")


def measure(
    url: str,
    make_requests: Callable[[], Sequence[Request]],
    load: Load,
    work_dir: Path,
    cpu_seconds: Callable[[], float] | None = None,
    behind_cpu_seconds: Callable[[], float] | None = None,
) -> WrkResult:
    """Warm up, then measure (`load.repeat` times, keeping the best). Requests are rebuilt for each wrk
    run so short-lived credentials (gateway assertions live 30 s) are fresh for its whole duration.
    `cpu_seconds`, when given, reads the server's cumulative CPU time around each measured run;
    `behind_cpu_seconds` the same for what serves it."""
    requests_file = work_dir / "requests.tsv"

    def run(seconds: int) -> WrkResult:
        requests_file.write_text("\n".join(r.line() for r in make_requests()) + "\n")
        return _run(url, requests_file, load.connections, seconds, load.delay_ms)

    if load.warmup_s > 0:
        run(load.warmup_s)
    results = []
    for _ in range(max(1, load.repeat)):
        before = cpu_seconds() if cpu_seconds else 0.0
        behind_before = behind_cpu_seconds() if behind_cpu_seconds else 0.0
        busy_before, total_before = core_times(LOAD_CORE)
        result = run(load.duration_s)
        busy_after, total_after = core_times(LOAD_CORE)
        result = dataclasses.replace(
            result, load_core_busy=(busy_after - busy_before) / max(1, total_after - total_before)
        )
        if cpu_seconds is not None:
            result = dataclasses.replace(result, cpu_s=cpu_seconds() - before)
        if behind_cpu_seconds is not None:
            result = dataclasses.replace(result, behind_cpu_s=behind_cpu_seconds() - behind_before)
        results.append(result)
    return max(results, key=lambda r: r.rps)
