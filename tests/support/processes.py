"""Run real servers (issuer, gateway, task service) as child processes for tests.

Tests that need a real server start it themselves; these helpers make that one call: pick a free port,
start the command with an explicit environment, poll an HTTP URL until it answers 200 (with a deadline,
never a fixed sleep), keep the output in a log file that failures quote, and stop with SIGTERM, then
SIGKILL if the process does not exit in time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
POLL_INTERVAL_S = 0.05
LOG_TAIL_CHARS = 4000

# Settings of the project's own services; a developer's shell must not leak them into a test's child.
SERVICE_ENV_PREFIXES = ("GATEWAY_", "TASKS_", "NOTES_", "BA_", "BETTER_AUTH_", "JWT_", "JWKS_", "TASKGATE_")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """The current environment without any service settings, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_ENV_PREFIXES)}
    env.update(overrides)
    return env


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A process's resident memory from /proc (`VmHWM`: its peak since start or since `reset_peak_rss`)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")


def reset_peak_rss(pid: int) -> None:
    """Set a process's VmHWM back to its current RSS (Linux ≥ 4.0, for processes the caller owns)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class ProcessFailed(RuntimeError):
    """A child process exited early or never became healthy; the message quotes its log."""


class PortTaken(ProcessFailed):
    """The process could not bind: something else took the free port between the check and the bind."""


# How Node, aiohttp and uvicorn report a port already bound.
ADDRESS_IN_USE_MARKERS = ("eaddrinuse", "address already in use")
PORT_ATTEMPTS = 3


@dataclass
class RunningProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self) -> str:
        return self.log_text()[-LOG_TAIL_CHARS:]

    def log_line(self, text: str, timeout_s: float = 10.0) -> str:
        """The first log line containing text, polled until it is written or the deadline passes."""
        deadline = time.monotonic() + timeout_s
        while True:
            for line in self.log_text().splitlines():
                if text in line:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} logged no line with {text!r} in {timeout_s} s:\n{self.log_tail()}")
            time.sleep(POLL_INTERVAL_S)

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after timeout_s; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout_s)
        return self.popen.returncode


def http_status(url: str, timeout_s: float = 2.0) -> int | None:
    """The status a GET on url answers with, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as err:
        return err.code
    except (OSError, ValueError):
        return None


def wait_for_http(proc: RunningProcess, url: str, timeout_s: float) -> None:
    """Poll url until it answers 200; fail at once if the process exits, or at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.popen.poll() is not None:
            tail = proc.log_tail()
            failure = PortTaken if any(m in tail.lower() for m in ADDRESS_IN_USE_MARKERS) else ProcessFailed
            raise failure(f"{proc.name} exited with {proc.popen.returncode}:\n{tail}")
        if http_status(url) == 200:
            return
        if time.monotonic() > deadline:
            raise ProcessFailed(f"{proc.name} did not answer 200 at {url} in {timeout_s} s:\n{proc.log_tail()}")
        time.sleep(POLL_INTERVAL_S)


def start_process(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    health_url: str,
    log_dir: Path,
    *,
    cwd: Path = REPO_ROOT,
    timeout_s: float = 30.0,
) -> RunningProcess:
    """Start argv and return once health_url answers 200; the process is stopped if it never does."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    proc = RunningProcess(name, popen, log_path)
    try:
        wait_for_http(proc, health_url, timeout_s)
    except BaseException:
        proc.stop()
        raise
    return proc


@contextmanager
def running(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    health_url: str,
    log_dir: Path,
    *,
    cwd: Path = REPO_ROOT,
    timeout_s: float = 30.0,
) -> Iterator[RunningProcess]:
    """start_process as a context manager that always stops the process on exit."""
    proc = start_process(name, argv, env, health_url, log_dir, cwd=cwd, timeout_s=timeout_s)
    try:
        yield proc
    finally:
        proc.stop()


@dataclass(frozen=True)
class Launch:
    """How to start a server that listens on a given port."""

    argv: Sequence[str]
    env: Mapping[str, str]
    health_url: str


@contextmanager
def running_on_port(
    name: str,
    launch: Callable[[int], Launch],
    log_dir: Path,
    *,
    port: int | None = None,
    cwd: Path = REPO_ROOT,
    timeout_s: float = 30.0,
) -> Iterator[tuple[RunningProcess, int]]:
    """running() on port, or on a free port, taking a new one when another process grabbed it first.

    A port from free_port() can be taken by anything before the child binds it (an outgoing connection's
    ephemeral port, a parallel test run), so only that failure is retried, and only for a port chosen here.
    """
    attempts = 1 if port is not None else PORT_ATTEMPTS
    for attempt in range(attempts):
        chosen = port if port is not None else free_port()
        spec = launch(chosen)
        try:
            proc = start_process(name, spec.argv, spec.env, spec.health_url, log_dir, cwd=cwd, timeout_s=timeout_s)
        except PortTaken:
            if attempt + 1 == attempts:
                raise
            continue
        try:
            yield proc, chosen
        finally:
            proc.stop()
        return
