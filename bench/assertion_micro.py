"""Micro-benchmark: what the body binding and the single use cost per forwarded request (µs per call).

On the gateway: signing an assertion for a bodiless GET (the empty body's digest is a constant) and for a
POST with a small JSON body and a 64 KiB one (SHA-256 of the bytes already in hand), and the `jti` alone
(gateway/policy/ids.py: a per-process prefix and a counter) beside what it replaced (os.urandom(16) + base64url,
a system call per id). On an upstream: the shared verifier with its body check and replay cache, full
of a busy lifetime's ids. Run pinned: `taskset -c 0 python -m bench.assertion_micro`; `make bench` includes
it in its micro table.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable
from pathlib import Path

if not __package__:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # `python bench/assertion_micro.py`

from bench import micro
from gateway.policy.assertion import AssertionSigner
from gateway.policy.ids import UniqueIds
from taskgate_assertion.format import b64url, body_digest
from taskgate_assertion.verify import AssertionVerifier

SECRET = b"s" * 48
SMALL = b'{"title":"write the report","notes":"before friday"}'
LARGE = os.urandom(64 * 1024)
HELD = 50_000  # ids in the replay cache while verifying: ~3,000 requests a second for its 15 s


def assertion_costs(seconds_per_case: float = 0.5) -> dict[str, float]:
    signer = AssertionSigner(SECRET)
    ids = UniqueIds()

    def sign(body: bytes, method: str = "POST") -> Callable[[], str]:
        return lambda: signer.sign(
            audience="task-service", method=method, target="/api/alice/tasks", body=body, user_id="alice",
            request_id="0123456789abcdef-1a",
        )  # fmt: skip

    costs = {
        "assertion: sign, bodiless GET": micro.best_us(sign(b"", "GET"), seconds_per_case),
        f"assertion: sign, POST {len(SMALL)} B body": micro.best_us(sign(SMALL), seconds_per_case),
        "assertion: sign, POST 64 KiB body": micro.best_us(sign(LARGE), seconds_per_case),
        f"assertion: body digest alone, {len(SMALL)} B": micro.best_us(lambda: body_digest(SMALL), seconds_per_case),
        "assertion: jti alone (prefix + counter)": micro.best_us(ids.next, seconds_per_case),
        "assertion: jti as it was (os.urandom(16), base64url)": micro.best_us(
            lambda: b64url(os.urandom(16)), seconds_per_case
        ),
    }
    verifier = AssertionVerifier([SECRET], "task-service", replay_capacity=10 * HELD)
    for n in range(HELD):
        verifier.replays.admit(f"held-{n}", 2**31 - 1, 0.0)
    tokens = (sign(SMALL)() for _ in itertools.count())

    def verify() -> None:
        verifier.verify(next(tokens), "POST", b"/api/alice/tasks", SMALL, "alice")

    verify_cost = micro.best_us(verify, seconds_per_case)
    # Signing is inside the timed call: take it out again.
    costs[f"assertion: verify incl. digest + replay cache ({HELD:,} held), POST {len(SMALL)} B"] = (
        verify_cost - costs[f"assertion: sign, POST {len(SMALL)} B body"]
    )
    return costs


if __name__ == "__main__":
    micro.main(__doc__, assertion_costs, "step")
