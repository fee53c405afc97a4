"""The results table: absolute figures per case, ratios against the references, and the side tables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.idle import Memory
from bench.wrk import WrkResult

MIB = 1024 * 1024


@dataclass
class Row:
    case: str
    connections: int
    result: WrkResult | None = None
    na_reason: str = ""
    compare: str = ""
    ratios: bool = False  # show × HAProxy and × baseline (forward-path rows)
    key: str = ""
    section: str = "forward"  # which table the row belongs to: the forward path, or the task service's


def _ms(us: int) -> str:
    return f"{us / 1000:.2f}"


def _signed_ms(us: int) -> str:
    return f"{us / 1000:+.2f}"


def ratio(a: WrkResult | None, b: WrkResult | None) -> str:
    if a is None or b is None or b.rps == 0:
        return "n/a"
    return f"{a.rps / b.rps:.2f}"


def efficiency(a: WrkResult, b: WrkResult | None) -> str:
    """Both ratios: requests/s, then CPU per request (the reference's cost over this one's)."""
    if b is None:
        return "n/a"
    cost_a, cost_b = a.cpu_us_per_request, b.cpu_us_per_request
    cpu = f" (cpu {cost_b / cost_a:.2f})" if cost_a and cost_b else ""
    return ratio(a, b) + cpu


def cpu_columns(r: WrkResult) -> str:
    cost, share = r.cpu_us_per_request, r.core_share
    load = "n/a" if r.load_core_busy is None else f"{100 * r.load_core_busy:.0f}"
    return "n/a | n/a | " + load if cost is None or share is None else f"{cost:.0f} | {100 * share:.0f} | {load}"


def added(a: WrkResult | None, ref: WrkResult | None) -> str:
    if a is None or ref is None:
        return "n/a"
    return f"p50 {_signed_ms(a.p50_us - ref.p50_us)} ms, p99 {_signed_ms(a.p99_us - ref.p99_us)} ms"


def render_rows(rows: list[Row], haproxy: WrkResult | None, baseline: WrkResult | None) -> str:
    lines = [
        "| case | conns | req/s | p50 ms | p99 ms | errors | CPU µs/req | core % | core 1 busy % | × HAProxy "
        "| × baseline | comparison |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in (row for row in rows if row.section == "forward"):
        r = row.result
        if r is None:
            lines.append(f"| {row.case} | {row.connections} | n/a | n/a | n/a | n/a | | | | | | {row.na_reason} |")
            continue
        vs_h = efficiency(r, haproxy) if row.ratios else ""
        vs_b = efficiency(r, baseline) if row.ratios else ""
        lines.append(
            f"| {row.case} | {row.connections} | {r.rps:,.0f} | {_ms(r.p50_us)} | {_ms(r.p99_us)} | {r.errors} "
            f"| {cpu_columns(r)} | {vs_h} | {vs_b} | {row.compare} |"
        )
    return "\n".join(lines)


def render_memory(name: str, memory: Memory | None, reason: str, target_mb: float) -> str:
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
            f"| {memory.connections_open} | ≤ {target_mb:.0f} MB ({target_mb * 1e6 / MIB:.1f} MiB) per worker |"
        )
    return "\n".join(lines)


def render_micro(costs: dict[str, float]) -> str:
    lines = [
        "| pyjwt `decode` per algorithm; the gateway's cached verdict; the assertion's steps; the checks as a whole "
        "| µs per call |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {cost:.2f} |" for name, cost in costs.items()]
    return "\n".join(lines)


def cpu_ratio(a: WrkResult | None, b: WrkResult | None) -> float | None:
    """b's CPU per request over a's: how many of a's requests fit in the CPU one of b's takes."""
    if a is None or b is None or not a.cpu_us_per_request or not b.cpu_us_per_request:
        return None
    return b.cpu_us_per_request / a.cpu_us_per_request


def rps_ratio(a: WrkResult | None, b: WrkResult | None) -> float | None:
    return None if a is None or b is None or b.rps == 0 else a.rps / b.rps


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def verdict(*values: float | None, ok: Callable[[float], bool]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "n/a"
    if all(ok(v) for v in known):
        return "met"
    return "met by one measure" if any(ok(v) for v in known) else "not met"


def render_targets(r: dict[str, WrkResult], memory: Memory | None, memory_target_mb: float) -> str:
    """The issue's targets read off this run, by requests/s and by CPU per request."""
    gw, hap, base = r.get("gateway"), r.get("haproxy"), r.get("baseline")
    lines = ["| target | by requests/s | by CPU per request | verdict |", "|---|---:|---:|---|"]

    def ratio_row(
        name: str, a: WrkResult | None, b: WrkResult | None, ok: Callable[[float], bool], cpu: bool = True
    ) -> None:
        by_rps, by_cpu = rps_ratio(a, b), cpu_ratio(a, b) if cpu else None
        lines.append(f"| {name} | {fmt(by_rps)} | {fmt(by_cpu)} | {verdict(by_rps, by_cpu, ok=ok)} |")

    ratio_row("gateway, every feature on, ≥ 0.5 × HAProxy (HS256 pool)", gw, hap, lambda v: v >= 0.5)
    ratio_row("gateway ≥ 3 × baseline", gw, base, lambda v: v >= 3)
    ratio_row(
        "EdDSA/JWKS within 10 % of HS256 (pool, same process, back to back)",
        r.get("eddsa"),
        r.get("eddsa-hs256"),
        lambda v: v >= 0.9,
    )
    # Scaling is judged on throughput; CPU per request only says whether the workers get in each other's way.
    ratio_row(
        "GATEWAY_WORKERS=2 over 1 (cores 0–1, shared with wrk)", r.get("w2"), r.get("w1"), lambda v: v >= 1.8, False
    )
    w1, w2 = r.get("w1"), r.get("w2")
    if w1 is not None and w2 is not None and w2.load_core_busy is not None:
        cost = cpu_ratio(w1, w2)
        bound = "the load side is the limit" if w2.load_core_busy >= 0.95 else "the load side had room"
        lines.append(
            f"| … CPU per request with 2 workers over 1 (1.00 = no interference); core 1 busy "
            f"{100 * w2.load_core_busy:.0f} % | | {fmt(cost)} | {bound} |"
        )
    paced, ref = r.get("gateway-paced"), r.get("nginx-paced")
    if paced is not None and ref is not None:
        added_p99 = (paced.p99_us - ref.p99_us) / 1000
        outcome = "met" if added_p99 <= 1 and paced.errors == 0 else "not met"
        lines.append(
            f"| p99 added over nginx ≤ 1 ms at 100 conns, 0 errors (paced, every feature on) | {added_p99:+.2f} ms, "
            f"{paced.errors} errors | | {outcome} |"
        )
    if memory is not None:
        megabytes = memory.rss_idle_mib * MIB / 1e6  # the target is read strictly, in decimal MB
        outcome = "met" if megabytes <= memory_target_mb else "not met"
        lines.append(
            f"| ≤ {memory_target_mb:.0f} MB RSS per worker, 1,000 idle connections (every feature on) | "
            f"{megabytes:.1f} MB ({memory.rss_idle_mib:.1f} MiB) | | {outcome} |"
        )
    return "\n".join(lines)
