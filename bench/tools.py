"""Installing the bench's outside tools from the distribution's packages when they are missing."""

from __future__ import annotations

import os
import shutil
import subprocess

# executable -> Debian package
TOOLS = {"wrk": "wrk", "haproxy": "haproxy", "nginx": "nginx", "taskset": "util-linux"}


def ensure_tools() -> None:
    missing = sorted({pkg for exe, pkg in TOOLS.items() if shutil.which(exe) is None})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(f"bench needs these packages installed: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing {' '.join(missing)} with apt-get …", flush=True)
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
