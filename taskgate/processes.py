"""Supervision of the processes `taskgate up` runs: start in order, wait for health, stop together."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from . import devsecrets

HEALTH_DEADLINE_S = 60.0
# The reference issuer ships in the source tree next to this package (`make run` runs from a checkout).
BETTER_AUTH_DIR = Path(
    os.environ.get("TASKGATE_BETTER_AUTH_DIR", Path(__file__).resolve().parents[1] / "deploy/better-auth")
)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], deadline_s: float = HEALTH_DEADLINE_S) -> bool:
    """Poll `url` until it answers 200, the process dies, or the deadline passes."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback URL built here
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def node_major() -> int | None:
    """Major version of the `node` on PATH, or None when there is none."""
    node = shutil.which("node")
    if node is None:
        return None
    try:
        out = subprocess.run(  # noqa: S603 - the resolved node binary, fixed arguments
            [node, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        return int(out.strip().lstrip("v").split(".")[0])
    except (subprocess.SubprocessError, ValueError, OSError):
        return None


@dataclass
class Stack:
    """The task service, the gateway and, when Node ≥ 20 is present, the Better Auth issuer and demo page."""

    gateway_port: int
    service_port: int
    auth_port: int
    user_secret: str
    internal_secret: str
    auth_secret: str
    revocation_secret: str
    issuer: str | None = None
    audience: str | None = None
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    with_auth: bool = False

    @classmethod
    def from_environment(cls, *, gateway_port: int, service_port: int) -> Stack:
        dev = devsecrets.load_or_create()
        return cls(
            gateway_port=gateway_port,
            service_port=service_port,
            auth_port=int(os.environ.get("BA_PORT", "3000")),
            user_secret=os.environ.get("GATEWAY_JWT_SECRET") or dev["GATEWAY_JWT_SECRET"],
            internal_secret=os.environ.get("GATEWAY_INTERNAL_SECRET") or dev["TASKGATE_INTERNAL_SECRET"],
            auth_secret=os.environ.get("BETTER_AUTH_SECRET") or dev["BETTER_AUTH_SECRET"],
            revocation_secret=os.environ.get("BA_REVOCATION_SECRET") or dev["TASKGATE_REVOCATION_SECRET"],
            issuer=os.environ.get("GATEWAY_JWT_ISSUER"),
            audience=os.environ.get("GATEWAY_JWT_AUDIENCE"),
        )

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def auth_url(self) -> str:
        return f"http://127.0.0.1:{self.auth_port}"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], health: str, cwd: Path | None = None) -> bool:
        full = {**os.environ, **env}
        proc = subprocess.Popen(argv, env=full, cwd=cwd, start_new_session=True)  # noqa: S603 - fixed argv
        self.procs.append((name, proc))
        if wait_healthy(health, proc):
            return True
        print(f"taskgate: {name} did not become healthy ({health})", file=sys.stderr)
        return False

    def start(self) -> bool:
        Path("data").mkdir(exist_ok=True)
        service_env = {
            "TASKS_PORT": str(self.service_port),
            "TASKS_INTERNAL_SECRET": self.internal_secret,
        }
        if not self._spawn(
            "task service",
            [sys.executable, "-m", "task_service"],
            service_env,
            f"http://127.0.0.1:{self.service_port}/healthz",
        ):
            return False
        self.with_auth = self._auth_available()
        if self.with_auth and not self._start_auth():
            return False
        gateway_env = {
            "GATEWAY_PORT": str(self.gateway_port),
            "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{self.service_port}",
            "GATEWAY_JWT_SECRET": self.user_secret,
            "GATEWAY_INTERNAL_SECRET": self.internal_secret,
        }
        if self.with_auth:
            # Better Auth sets iss and aud to its own origin; the development tokens minted here match.
            self.issuer = self.issuer or self.auth_url
            self.audience = self.audience or self.auth_url
            if os.environ.get("JWT_MODE", "eddsa") != "hs256":
                gateway_env["GATEWAY_JWKS_URL"] = f"{self.auth_url}/api/auth/jwks"
            gateway_env["GATEWAY_JWT_ISSUER"] = self.issuer
            gateway_env["GATEWAY_JWT_AUDIENCE"] = self.audience
            gateway_env["GATEWAY_CORS_ORIGINS"] = ",".join(
                filter(None, [os.environ.get("GATEWAY_CORS_ORIGINS"), self.auth_url])
            )
            # Sign-out ends API access: the gateway follows the issuer's revocation feed.
            gateway_env["GATEWAY_REVOCATION_URL"] = f"{self.auth_url}/api/auth/revocations"
            gateway_env["GATEWAY_REVOCATION_SECRET"] = self.revocation_secret
        return self._spawn("gateway", [sys.executable, "-m", "gateway"], gateway_env, f"{self.gateway_url}/healthz")

    def _auth_available(self) -> bool:
        major = node_major()
        if major is None or major < 20:
            print("taskgate: Node.js >= 20 not found: running without the Better Auth issuer and demo page")
            return False
        if not (BETTER_AUTH_DIR / "node_modules").is_dir():
            print(f"taskgate: {BETTER_AUTH_DIR}/node_modules missing (run `make node-deps`): no demo page")
            return False
        return True

    def _start_auth(self) -> bool:
        env = {
            "BA_PORT": str(self.auth_port),
            "BA_BASE_URL": self.auth_url,
            "BA_DB_PATH": str(Path("data/better-auth.sqlite").resolve()),
            "BETTER_AUTH_SECRET": self.auth_secret,
            "GATEWAY_URL": self.gateway_url,
            # Used only in JWT_MODE=hs256, where the issuer signs with the secret the gateway verifies.
            "GATEWAY_JWT_SECRET": self.user_secret,
            "BA_REVOCATION_SECRET": self.revocation_secret,
        }
        return self._spawn("better auth", ["node", "server.mjs"], env, f"{self.auth_url}/healthz", cwd=BETTER_AUTH_DIR)

    def banner(self, token: str) -> str:
        lines = [
            "",
            f"taskgate is up: gateway {self.gateway_url} -> task service http://127.0.0.1:{self.service_port}",
        ]
        if self.with_auth:
            lines.append(f"demo page (sign up, then manage tasks): {self.auth_url}/")
        lines += [
            "try it with a development token for user 'demo-user' (valid 1 h):",
            "",
            f"  curl -s -X POST -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\",
            f'       -d \'{{"title": "Try taskgate"}}\' {self.gateway_url}/api/demo-user/tasks',
            f"  curl -s -H 'Authorization: Bearer {token}' {self.gateway_url}/api/demo-user/tasks",
            "",
            f"new tokens: {self._token_command()}      stop: Ctrl-C",
        ]
        return "\n".join(lines)

    def _token_command(self) -> str:
        """The `taskgate token` line that mints tokens this gateway accepts (with its issuer and audience)."""
        env = ""
        if self.issuer:
            env += f"GATEWAY_JWT_ISSUER={self.issuer} "
        if self.audience:
            env += f"GATEWAY_JWT_AUDIENCE={self.audience} "
        return f"{env}.venv/bin/taskgate token USER_ID --ttl 15m"

    def wait(self) -> int:
        """Block until Ctrl-C/SIGTERM or until a child dies; the exit code says which."""
        stop = {"signalled": False}

        def on_signal(_signum: int, _frame: object) -> None:
            stop["signalled"] = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not stop["signalled"]:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    print(f"taskgate: {name} exited with {proc.returncode}", file=sys.stderr)
                    return 1
            time.sleep(0.5)
        return 0

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
