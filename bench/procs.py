"""Starting, pinning, finding and stopping the processes a bench run owns.

Every child runs in its own session so that it and anything it forks (nginx workers, gateway workers)
can be stopped by process group on exit, including after Ctrl-C, without touching anything else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(cores: str, argv: Sequence[str]) -> list[str]:
    return ["taskset", "-c", cores, *argv]


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


@dataclass
class Started:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


class StartError(RuntimeError):
    """A process exited or never listened; the message carries the tail of its log."""


@dataclass
class Processes:
    """The processes of one bench run; `stop_all` (also run on exit) ends each group it started."""

    log_dir: Path
    started: list[Started] = field(default_factory=list)

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None, port: int | None = None
    ) -> Started:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        item = Started(name, proc, log)
        self.started.append(item)
        if port is not None:
            self._wait_listening(item, port)
        return item

    def _wait_listening(self, item: Started, port: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if item.proc.poll() is not None:
                raise StartError(f"{item.name} exited with {item.proc.returncode}:\n{item.log_tail()}")
            if port_open(port):
                return
            time.sleep(0.05)
        raise StartError(f"{item.name} did not listen on {port} within {READY_TIMEOUT_S:.0f} s")

    def stop(self, item: Started) -> None:
        if item.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(item.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                item.proc.wait(STOP_TIMEOUT_S)
        # Workers a supervisor forked may outlive it; the group still names them.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(item.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            item.proc.wait(STOP_TIMEOUT_S)
        if item in self.started:
            self.started.remove(item)

    def stop_all(self) -> None:
        for item in reversed(list(self.started)):
            self.stop(item)


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            next(fh)
            for line in fh:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "0A":
                    inodes.add(cols[9])
    return inodes


def established_count(port: int) -> int:
    """Server-side ESTABLISHED sockets on `port` (state 01), to confirm idle connections stay open."""
    count = 0
    with open("/proc/net/tcp") as fh:
        next(fh)
        for line in fh:
            cols = line.split()
            if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "01":
                count += 1
    return count


def _session_pids(sid: int) -> list[int]:
    pids = []
    for pid in _all_pids():
        with contextlib.suppress(OSError):
            # Fields after the parenthesised command: state ppid pgrp session ...
            if int(_stat_fields(pid)[3]) == sid:
                pids.append(pid)
    return pids


def _listening_owners(pids: list[int], port: int) -> list[int]:
    inodes = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    owners = []
    for pid in pids:
        with contextlib.suppress(OSError):
            fd_dir = Path(f"/proc/{pid}/fd")
            if any(os.readlink(fd) in inodes for fd in fd_dir.iterdir()):
                owners.append(pid)
    return owners


def listening_pids(item: Started, port: int) -> list[int]:
    """Processes of `item` that own a listening socket on `port`: its serving workers."""
    return _listening_owners(_session_pids(item.proc.pid), port)


def _all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def server_pid(port: int) -> int:
    """The process listening on `port`, for a server this run did not start through `Processes` (the
    tests' throw-away PostgreSQL)."""
    owners = _listening_owners(_all_pids(), port)
    if not owners:
        raise RuntimeError(f"nothing listens on {port}")
    return min(owners)


def listening_socket_count(port: int) -> int:
    """How many sockets listen on `port`: N with SO_REUSEPORT workers, 1 otherwise."""
    return len(_listening_inodes(port))


_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the parenthesised command (state is [0], ppid [1])."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_of(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = _stat_fields(pid)
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / _TICKS


def cpu_seconds(item: Started) -> float:
    """User + system CPU of every live process in `item`'s session (workers included)."""
    return _cpu_of(_session_pids(item.proc.pid))


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of `root`, its live children and the children it has reaped (a PostgreSQL server:
    its backends come and go with the clients' connections, and their CPU must not vanish when they exit)."""
    children = []
    for pid in _all_pids():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(_stat_fields(pid)[1]) == root:
                children.append(pid)
    reaped = 0
    with contextlib.suppress(OSError):
        fields = _stat_fields(root)
        reaped = int(fields[13]) + int(fields[14])  # cutime, cstime (fields 16 and 17 of stat)
    return _cpu_of([root, *children]) + reaped / _TICKS


def core_times(core: int) -> tuple[int, int]:
    """(busy, total) jiffies of one core since boot, from /proc/stat: busy = all but idle and iowait."""
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields[0] == f"cpu{core}":
            ticks = [int(v) for v in fields[1:]]
            return sum(ticks) - ticks[3] - ticks[4], sum(ticks)
    raise RuntimeError(f"no cpu{core} in /proc/stat")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
