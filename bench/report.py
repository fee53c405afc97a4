"""The results table: absolute figures per case, ratios against the references, and the side tables."""

from __future__ import annotations

from dataclasses import dataclass

from bench.idle import Memory
from bench.wrk import WrkResult


@dataclass
class Row:
    case: str
    connections: int
    result: WrkResult | None = None
    na_reason: str = ""
    compare: str = ""
    ratios: bool = False  # show × HAProxy and × baseline (forward-path rows)


def _ms(us: int) -> str:
    return f"{us / 1000:.2f}"


def _signed_ms(us: int) -> str:
    return f"{us / 1000:+.2f}"


def ratio(a: WrkResult | None, b: WrkResult | None) -> str:
    if a is None or b is None or b.rps == 0:
        return "n/a"
    return f"{a.rps / b.rps:.2f}"


def _efficiency(a: WrkResult, b: WrkResult | None) -> str:
    """Both ratios: requests/s, then CPU per request (the reference's cost over this one's)."""
    if b is None:
        return "n/a"
    cost_a, cost_b = a.cpu_us_per_request, b.cpu_us_per_request
    cpu = f" (cpu {cost_b / cost_a:.2f})" if cost_a and cost_b else ""
    return ratio(a, b) + cpu


def _cpu(r: WrkResult) -> str:
    cost, share = r.cpu_us_per_request, r.core_share
    return "n/a" if cost is None or share is None else f"{cost:.0f} | {100 * share:.0f}"


def added(a: WrkResult | None, ref: WrkResult | None) -> str:
    if a is None or ref is None:
        return "n/a"
    return f"p50 {_signed_ms(a.p50_us - ref.p50_us)} ms, p99 {_signed_ms(a.p99_us - ref.p99_us)} ms"


def render_rows(rows: list[Row], haproxy: WrkResult | None, baseline: WrkResult | None) -> str:
    lines = [
        "| case | conns | req/s | p50 ms | p99 ms | errors | CPU µs/req | core % | × HAProxy | × baseline "
        "| comparison |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        r = row.result
        if r is None:
            lines.append(f"| {row.case} | {row.connections} | n/a | n/a | n/a | n/a | | | | | {row.na_reason} |")
            continue
        vs_h = _efficiency(r, haproxy) if row.ratios else ""
        vs_b = _efficiency(r, baseline) if row.ratios else ""
        lines.append(
            f"| {row.case} | {row.connections} | {r.rps:,.0f} | {_ms(r.p50_us)} | {_ms(r.p99_us)} | {r.errors} "
            f"| {_cpu(r)} | {vs_h} | {vs_b} | {row.compare} |"
        )
    return "\n".join(lines)


def render_memory(name: str, memory: Memory | None, reason: str, target_mib: float) -> str:
    lines = [
        "| process | workers | RSS after load, MiB | RSS with idle keep-alive connections, MiB | connections open |"
        " target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    if memory is None:
        lines.append(f"| {name} | n/a | n/a | n/a | n/a | {reason} |")
    else:
        lines.append(
            f"| {name} | {memory.workers} | {memory.rss_before_mib:.1f} | {memory.rss_idle_mib:.1f} "
            f"| {memory.connections_open} | ≤ {target_mib:.0f} MiB per worker |"
        )
    return "\n".join(lines)


def render_micro(costs: dict[str, float]) -> str:
    lines = ["| pyjwt `decode`, algorithm | µs per verify |", "|---|---:|"]
    lines += [f"| {alg} | {cost:.1f} |" for alg, cost in costs.items()]
    return "\n".join(lines)
