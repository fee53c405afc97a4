"""Micro-benchmark: what one pyjwt verification costs per algorithm (µs per `jwt.decode`).

This is the price a proxy pays per request without a verified-token cache; keys are loaded once, as a
gateway with a cached JWKS would hold them. Run pinned: `taskset -c 0 python -m bench.tokens_micro`.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

if not __package__:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # `python bench/tokens_micro.py`

from bench import tokens

ROUNDS = 5


def _keys() -> dict[str, tuple[Any, Any]]:
    """Signing key and verifying key per algorithm."""
    secret = tokens.new_secret()
    ed = ed25519.Ed25519PrivateKey.generate()
    es = ec.generate_private_key(ec.SECP256R1())
    rs = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "HS256": (secret, secret),
        "EdDSA": (ed, ed.public_key()),
        "ES256": (es, es.public_key()),
        "RS256": (rs, rs.public_key()),
    }


def verify_costs(seconds_per_alg: float = 0.5) -> dict[str, float]:
    """Best of ROUNDS timings, µs per verification, each round sized to about seconds_per_alg/ROUNDS."""
    costs = {}
    sub = tokens.user_id(0)
    for alg, (signing, verifying) in _keys().items():
        token = jwt.encode({"sub": sub, "iat": 0, "exp": 2**31 - 1}, signing, algorithm=alg)

        def verify(token: str = token, verifying: Any = verifying, alg: str = alg) -> None:
            jwt.decode(token, verifying, algorithms=[alg])

        timer = timeit.Timer(verify)
        number, elapsed = timer.autorange()
        number = max(1, int(number * seconds_per_alg / ROUNDS / max(elapsed, 1e-9)))
        costs[alg] = min(timer.repeat(ROUNDS, number)) / number * 1e6
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    costs = verify_costs()
    if args.json:
        print(json.dumps(costs))
        return
    print("| algorithm | µs per verify |\n|---|---|")
    for alg, cost in costs.items():
        print(f"| {alg} | {cost:.1f} |")


if __name__ == "__main__":
    main()
