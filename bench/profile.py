"""Where the gateway's time goes: py-spy samples the gateway worker while wrk drives the HS256 pool.

`python bench/profile.py` (py-spy must be installed in the venv: `.venv/bin/pip install py-spy`; it is a
bench-only tool, not a project dependency). Writes the collapsed stacks and a summary of the top frames
(self = the sampled leaf, total = anywhere on the stack) to bench/results/.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if not __package__:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import pools, tokens
from bench.procs import Processes, cpu_seconds, listening_pids
from bench.stack import REPO, Stack, expect_forwarded
from bench.tools import ensure_tools
from bench.wrk import Load, measure

RESULTS = REPO / "bench" / "results"
TOP = 25


def _py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def summarise(collapsed: str, top: int = TOP) -> str:
    """Self and inclusive sample shares per frame from py-spy's raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{samples} samples", "", "| self % | total % | frame |", "|---:|---:|---|"]
    for frame, count in own.most_common(top):
        lines.append(f"| {100 * count / samples:.1f} | {100 * total[frame] / samples:.1f} | `{frame}` |")
    lines += ["", "| total % | frame |", "|---:|---|"]
    for frame, count in total.most_common(top):
        lines.append(f"| {100 * count / samples:.1f} | `{frame}` |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--single", action="store_true", help="one token (cache hits) instead of the pool")
    parser.add_argument("--native", action="store_true", help="include C frames (slower sampling)")
    args = parser.parse_args()
    py_spy = _py_spy()
    ensure_tools()
    run_dir = Path(tempfile.mkdtemp(prefix="taskgate-profile-"))
    run_dir.chmod(0o755)
    procs = Processes(run_dir)
    stack = Stack(run_dir, procs)
    out = RESULTS / "profile.collapsed"
    RESULTS.mkdir(parents=True, exist_ok=True)
    try:
        users = [tokens.user_id(i) for i in range(pools.POOL_SIZE)]
        pool = pools.bearer_pool([tokens.hs256_token(stack.jwt_secret, u) for u in users])
        if args.single:
            pool = pools.single(pool)
        nginx = stack.nginx()
        gateway = stack.gateway(nginx)
        expect_forwarded(gateway, pool[0])
        measure(gateway.url, lambda: pool, Load(warmup_s=0, duration_s=2), run_dir)  # warm caches
        pid = listening_pids(gateway.process, gateway.port)[0]
        record = [py_spy, "record", "--pid", str(pid), "--duration", str(args.seconds), "--rate", "200"]
        record += ["--format", "raw", "--nolineno", "--output", str(out), *(["--native"] if args.native else [])]
        spy = subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        result = measure(
            gateway.url,
            lambda: pool,
            Load(warmup_s=0, duration_s=args.seconds + 1),
            run_dir,
            lambda: cpu_seconds(gateway.process),
        )
        _, err = spy.communicate(timeout=60)
        if spy.returncode != 0:
            raise SystemExit(f"py-spy failed: {err.decode(errors='replace').strip()[-300:]}")
    finally:
        procs.stop_all()
        shutil.rmtree(run_dir, ignore_errors=True)
    summary = (
        f"gateway under load: {result.rps:,.0f} req/s, {result.cpu_us_per_request or 0:.0f} µs CPU/request "
        f"while sampled (py-spy pauses the process to sample, which costs some throughput)\n\n"
        + summarise(out.read_text())
    )
    (RESULTS / "profile.md").write_text(summary + "\n")
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
