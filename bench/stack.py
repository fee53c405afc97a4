"""The servers of one bench run: each started on a free 127.0.0.1 port, pinned, and probed once.

Placement (docs/performance.md): the proxy under test on core 0, wrk and nginx on core 1, so every proxy
competes only with itself; in the task service suite, the app under test on core 0, and wrk, the gateway in
front of the service and PostgreSQL on core 1.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench import tokens
from bench.procs import Processes, Started, StartError, free_port, listening_socket_count, pinned
from bench.upstream import FIXED_BODY, JWKS_PATH, REVOCATIONS_PATH, render_nginx_conf
from bench.wrk import Request
from gateway.policy.default import TASK_ROUTES

PROXY_CORES = "0"
SUPPORT_CORES = "1"
REPO = Path(__file__).resolve().parent.parent
WORKERS_SETTLE_S = 10.0


class Unavailable(RuntimeError):
    """A case cannot run yet (e.g. the gateway lacks a feature); its row reads n/a with this reason."""


POLICY_ROUTES = 50  # the policy file of the gateway with every feature on


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    process: Started

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def request_once(port: int, req: Request) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(req.method, req.path, body=req.body, headers=req.headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Stack:
    run_dir: Path
    procs: Processes
    jwt_secret: str = field(default_factory=tokens.new_secret)
    internal_secret: str = field(default_factory=tokens.new_secret)
    revocation_secret: str = field(default_factory=tokens.new_secret)
    eddsa: tokens.EdDSAKey = field(default_factory=tokens.EdDSAKey)

    def _python(self, name: str, module: str, args: list[str], env: Mapping[str, str], cores: str) -> Server:
        port = free_port()
        argv = pinned(cores, [sys.executable, "-m", module, *[a.replace("{port}", str(port)) for a in args]])
        env = {"PYTHONPATH": str(REPO), **{k: v.replace("{port}", str(port)) for k, v in env.items()}}
        return Server(name, port, self.procs.start(name, argv, env=env, port=port))

    def nginx(self) -> Server:
        port = free_port()
        conf = render_nginx_conf(self.run_dir, port, self.eddsa.jwks_json(), tokens.revocation_feed())
        argv = pinned(SUPPORT_CORES, ["nginx", "-c", str(conf), "-p", str(self.run_dir)])
        return Server("nginx", port, self.procs.start("nginx", argv, port=port))

    def haproxy(self, upstream: Server, *, plain: bool = False) -> Server:
        """`plain`: the same HAProxy without the checks, for the cost of proxying alone."""
        port = free_port()
        env = {
            "BENCH_HAPROXY_PORT": str(port),
            "BENCH_UPSTREAM_PORT": str(upstream.port),
            "BENCH_JWT_SECRET": self.jwt_secret,
            **({"BENCH_PLAIN_PROXY": "1"} if plain else {}),
        }
        name = "haproxy-plain" if plain else "haproxy"
        argv = pinned(PROXY_CORES, ["haproxy", "-db", "-f", str(REPO / "bench" / "haproxy.cfg")])
        return Server(name, port, self.procs.start(name, argv, env=env, port=port))

    def baseline(self, upstream: Server) -> Server:
        return self._python(
            "baseline",
            "bench.baseline_proxy",
            ["--port", "{port}", "--upstream", upstream.url],
            {"BENCH_JWT_SECRET": self.jwt_secret},
            PROXY_CORES,
        )

    def fixed(self, uvloop: bool) -> Server:
        args = ["--port", "{port}", *(["--uvloop"] if uvloop else [])]
        return self._python("aiohttp-fixed", "bench.fixed_server", args, {}, PROXY_CORES)

    def bare(self, upstream: Server) -> Server:
        """The gateway's connection and upstream code with no checks (bench/bare_proxy.py)."""
        return self._python(
            "bare-proxy", "bench.bare_proxy", ["--port", "{port}", "--upstream", upstream.url], {}, PROXY_CORES
        )

    def gateway(
        self,
        upstream: Server,
        *,
        jwks: Server | None = None,
        workers: int = 1,
        cores: str = PROXY_CORES,
        access_log: bool = False,
        policy_routes: int = 0,
        revocations: bool = False,
    ) -> Server:
        """Access logging is off unless asked for: no reference logs per request (docs/performance.md).
        `policy_routes`: a policy file of that many routes instead of the default policy (policy_file).
        `revocations`: the revocation check on, following the feed `upstream` serves (bench/tokens.py)."""
        if not (REPO / "gateway" / "__main__.py").exists():
            raise Unavailable("no `python -m gateway` yet")
        upstream_env = {"GATEWAY_UPSTREAM_URL": upstream.url}
        if policy_routes:
            upstream_env = {"GATEWAY_POLICY_FILE": str(self.policy_file(upstream, policy_routes))}
        env = {
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": "{port}",
            **upstream_env,
            "GATEWAY_JWT_SECRET": self.jwt_secret,
            "GATEWAY_INTERNAL_SECRET": self.internal_secret,
            "GATEWAY_WORKERS": str(workers),
            "GATEWAY_ACCESS_LOG": "true" if access_log else "false",
        }
        if jwks is not None:
            env["GATEWAY_JWKS_URL"] = jwks.url + JWKS_PATH
        if revocations:
            env["GATEWAY_REVOCATION_URL"] = upstream.url + REVOCATIONS_PATH
            env["GATEWAY_REVOCATION_SECRET"] = self.revocation_secret
        name = f"gateway-{'eddsa' if jwks else 'hs256'}-w{workers}{'-log' if access_log else ''}"
        name += f"-policy{policy_routes}" if policy_routes else ""
        name += "-revocations" if revocations else ""
        try:
            server = self._python(name, "gateway", [], env, cores)
        except StartError as exc:
            raise Unavailable(f"gateway did not start: {str(exc).splitlines()[-1][:120]}") from exc
        if workers > 1:
            self._await_workers(server, workers)
        return server

    def gateway_all_features(self, upstream: Server) -> Server:
        """The gateway as issue #17 judges it: access log, metrics, a 50-route policy file, revocation check."""
        return self.gateway(upstream, access_log=True, policy_routes=POLICY_ROUTES, revocations=True)

    def policy_file(self, upstream: Server, routes: int) -> Path:
        """A policy of `routes` routes whose last three are the task API: each request is matched after every
        other route could have been (bench/policy_micro.py measures the router alone)."""
        lines = [f'upstreams: {{task-service: {{url: "{upstream.url}"}}}}', "routes:"]
        route = "  - {{path: '{path}', methods: [{methods}], upstream: task-service, match: {{user_id: sub}}}}"
        lines += [route.format(path=f"/svc{n}/{{user_id}}/items", methods="GET") for n in range(routes - 3)]
        lines += [route.format(path=path, methods=", ".join(methods)) for path, methods in TASK_ROUTES]
        path = self.run_dir / f"policy-{routes}.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _await_workers(self, server: Server, workers: int) -> None:
        """SO_REUSEPORT workers each hold their own listening socket: wait until all of them do."""
        deadline = time.monotonic() + WORKERS_SETTLE_S
        while listening_socket_count(server.port) < workers:
            if time.monotonic() > deadline:
                self.procs.stop(server.process)
                raise Unavailable(f"GATEWAY_WORKERS={workers} gave one listening socket (not supported yet)")
            time.sleep(0.1)

    def sqlite_url(self, name: str) -> str:
        return f"sqlite+aiosqlite:///{self.run_dir / name}.db"

    def task_service(self, database_url: str | None = None, cores: str = PROXY_CORES) -> Server:
        """`python -m task_service` on a freshly migrated database (by default a new SQLite file)."""
        if not (REPO / "task_service" / "__main__.py").exists():
            raise Unavailable("no `python -m task_service` yet")
        env = {
            "TASKS_HOST": "127.0.0.1",
            "TASKS_PORT": "{port}",
            "TASKS_DATABASE_URL": database_url or self.sqlite_url("tasks"),
            "TASKS_INTERNAL_SECRET": self.internal_secret,
        }
        migrate = subprocess.run(
            [sys.executable, "-m", "task_service", "migrate"],
            env={**os.environ, "PYTHONPATH": str(REPO), **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        if migrate.returncode != 0:
            raise Unavailable(f"task service migrate failed: {migrate.stderr.strip()[-120:]}")
        try:
            return self._python("task-service", "task_service", [], env, cores)
        except StartError as exc:
            raise Unavailable(f"task service did not start: {str(exc).splitlines()[-1][:120]}") from exc

    def service_reference(self, name: str, database_url: str, cores: str = PROXY_CORES) -> Server:
        """`floor` (bench/service_floor.py) or `plain` (bench/service_plain.py), on an empty database."""
        env = {"BENCH_DATABASE_URL": database_url, "BENCH_JWT_SECRET": self.jwt_secret}
        try:
            return self._python(f"service-{name}", f"bench.service_{name}", ["--port", "{port}"], env, cores)
        except StartError as exc:
            raise Unavailable(f"{name} did not start: {str(exc).splitlines()[-1][:120]}") from exc

    def stop(self, server: Server) -> None:
        self.procs.stop(server.process)


def expect(server: Server, req: Request, status: int, body: str | None = None) -> None:
    """One request before measuring: a case whose answers are wrong is reported n/a, not timed."""
    got, content = request_once(server.port, req)
    if got != status or (body is not None and content.decode(errors="replace") != body):
        raise Unavailable(f"{server.name} answered {got} to the probe (expected {status})")


def expect_forwarded(server: Server, req: Request) -> None:
    expect(server, req, 200, FIXED_BODY)


def expect_checks(server: Server, probes: list[tuple[str, Request, int]]) -> None:
    """A proxy that lets a bad request through is not doing the work it is compared on: refuse to time it."""
    for name, req, status in probes:
        got, _ = request_once(server.port, req)
        if got != status:
            raise Unavailable(f"{server.name} answered {got} to the '{name}' probe (expected {status})")
