"""Micro-benchmark: what routing a target costs with the policy router, for 1, 3 (default) and 50 routes.

The policy must not make the gateway slower as it grows: a 50-route policy should cost what the default
costs. Measured per call, best of ROUNDS interleaved rounds: `locate` as the gateway calls it (the LRU
answers repeated targets); the uncached path (strict checks + dispatch + one regex: what a never-seen
target pays); a 404; `authorise` with one `match` rule. Two 50-route shapes: "distinct" (each API under
its own first segment, as real policies look) and "params-first" (every template starts with a parameter:
the first segment tells nothing apart). Run pinned: `taskset -c 0 python -m bench.policy_micro`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

if not __package__:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # `python bench/policy_micro.py`

from gateway.policy.default import default_policy
from gateway.policy.file import parse_policy
from gateway.policy.match import Router, authorise
from gateway.policy.model import Issuer, Policy
from gateway.settings import GatewaySettings

ROUNDS = 7
SECRET = "bench-secret-" + "b" * 32
ISSUER = Issuer("default", secret_env="BENCH", secrets=(SECRET.encode(),))


def _policy(routes: list[str]) -> Policy:
    lines = ["upstreams: {u: {url: 'http://127.0.0.1:1'}}", "routes:"]
    lines += [f"  - {{path: '{path}', methods: [GET], upstream: u, match: {{user_id: sub}}}}" for path in routes]
    return parse_policy("\n".join(lines), source="bench", environ={}, fallback_issuer=ISSUER, reserved_secrets=())


def policies() -> dict[str, tuple[Policy, str]]:
    """name → (policy, a target that matches its last route: the most templates to try)."""
    settings = GatewaySettings(jwt_secret=SECRET, internal_secret="i" * 40)  # type: ignore[call-arg]
    distinct = [f"/svc{n}/{{user_id}}/items{suffix}" for n in range(25) for suffix in ("", "/{id:int}")]
    params_first = [f"/{{user_id}}/api{n}/{{id:int}}" for n in range(50)]
    return {
        "1 route": (_policy(["/api/{user_id}/tasks"]), "/api/alice/tasks"),
        "default (3)": (default_policy(settings), "/api/alice/tasks/42/complete"),
        "50 distinct": (_policy(distinct), "/svc24/alice/items/42"),
        "50 params-first": (_policy(params_first), "/alice/api49/42"),
    }


def measure(seconds: float = 0.2) -> dict[str, dict[str, float]]:
    """ns per call, best of ROUNDS; the rounds interleave every case, so a noisy neighbour slows all alike."""
    claims = {"sub": "alice"}
    cases: dict[tuple[str, str], Callable[[], object]] = {}
    for name, (policy, target) in policies().items():
        router = Router(policy)
        located = router.locate(target)
        cases[name, "locate (cached)"] = lambda r=router, t=target: r.locate(t)
        cases[name, "locate (uncached)"] = lambda r=router, t=target: r._locate(t)
        cases[name, "404 (uncached)"] = lambda r=router: _not_routed(r)
        cases[name, "authorise"] = lambda loc=located: authorise(loc.route, loc.params, "default", claims)
    timers = {case: timeit.Timer(fn) for case, fn in cases.items()}
    numbers = {}
    for case, timer in timers.items():
        number, elapsed = timer.autorange()
        numbers[case] = max(1, int(number * seconds / max(elapsed, 1e-9)))
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(ROUNDS):
        for case, timer in timers.items():
            best[case] = min(best[case], timer.timeit(numbers[case]) / numbers[case] * 1e9)
    results: dict[str, dict[str, float]] = {}
    for (name, metric), ns in best.items():
        results.setdefault(name, {})[metric] = ns
    return results


def _not_routed(router: Router) -> None:
    with contextlib.suppress(LookupError):
        router._locate("/nothing/here/at/all")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    results = measure()
    if args.json:
        print(json.dumps(results))
        return
    columns = ["locate (cached)", "locate (uncached)", "404 (uncached)", "authorise"]
    print("| policy | " + " | ".join(f"{c}, ns" for c in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, row in results.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.0f}" if c in row else "—" for c in columns) + " |")


if __name__ == "__main__":
    main()
