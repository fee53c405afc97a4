"""What the micro-benchmarks share: best-of-rounds timing and their command line (a table, or --json for
bench/run.py's micro table)."""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable

ROUNDS = 5


def best_us(call: Callable[[], object], seconds: float) -> float:
    """Best of ROUNDS timings, µs per call, each round sized to about seconds/ROUNDS."""
    timer = timeit.Timer(call)
    number, elapsed = timer.autorange()
    number = max(1, int(number * seconds / ROUNDS / max(elapsed, 1e-9)))
    return min(timer.repeat(ROUNDS, number)) / number * 1e6


def main(
    description: str | None,
    measure: Callable[[], dict[str, float]],
    column: str,
    profile: Callable[[], None] | None = None,
) -> None:
    """Print `measure()` as a two-column table (`column` | µs), or as one JSON object with --json; `profile`,
    when given, is what `--profile` runs instead."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    if profile is not None:
        parser.add_argument("--profile", action="store_true", help="print where the time goes instead")
    args = parser.parse_args()
    if profile is not None and args.profile:
        profile()
        return
    costs = measure()
    if args.json:
        print(json.dumps(costs))
        return
    print(f"| {column} | µs |\n|---|---|")
    for name, cost in costs.items():
        print(f"| {name} | {cost:.2f} |")
