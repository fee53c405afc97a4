"""One bench run's cases: each measured with wrk, printed as it goes and kept as a row of the table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.idle import Memory
from bench.procs import cpu_seconds
from bench.report import Row
from bench.stack import Server, Stack
from bench.wrk import Load, Request, WrkResult, measure


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
        load: Load | None = None,
        behind: Callable[[], float] | None = None,
        section: str = "forward",
    ) -> Row:
        """`load` overrides the run's durations; `behind` reads the CPU of what serves the server under
        test (a database server, the task service behind a gateway), reported per request beside its own."""
        base = load or self.load
        load = Load(connections, base.warmup_s, base.duration_s, delay_ms, base.repeat)
        print(f"  {title} …", end="", flush=True)
        result = measure(server.url, requests, load, self.stack.run_dir, lambda: cpu_seconds(server.process), behind)
        print(
            f" {result.rps:,.0f} req/s, p99 {result.p99_us / 1000:.2f} ms, {result.errors} errors, "
            f"{result.cpu_us_per_request or 0:.0f} µs CPU/request",
            flush=True,
        )
        self.results[key] = result
        row = Row(title, connections, result, ratios=ratios, key=key, section=section)
        self.rows.append(row)
        return row

    def na(self, titles: Sequence[tuple[str, int]], reason: str, section: str = "forward") -> None:
        print(f"  n/a: {reason}", flush=True)
        self.rows += [Row(title, conns, na_reason=reason, section=section) for title, conns in titles]
