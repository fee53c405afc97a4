"""The task service against its stack's floor and a plain SQLModel backend, directly and through the gateway,
on SQLite and PostgreSQL (docs/performance.md, "The task service").

Placement: the app under test runs alone on core 0; wrk, the gateway in front of the service and the
PostgreSQL server run on core 1. Each backend gets its own fresh database, seeded with SEED_TASKS_PER_USER
tasks for each of `pools.E2E_USERS` users through its own create endpoint, then timed on list (the default
page) before create, so every list answers the same ten tasks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from bench import pools, tokens
from bench.procs import cpu_seconds, server_pid, tree_cpu_seconds
from bench.report import Row, cpu_columns, efficiency, fmt, ratio, rps_ratio
from bench.runner import Bench
from bench.stack import SUPPORT_CORES, Server, Stack, Unavailable, expect, request_once
from bench.wrk import Load, Request, WrkResult
from tests.task_service.postgres import PostgresServer, PostgresUnavailable, in_thread, running_postgres

SECTION = "service"
SEED_TASKS_PER_USER = 10
DATABASES = ("sqlite", "postgresql")
OPERATIONS = ("list", "create")
METHODS = {"list": "GET", "create": "POST"}
DB_TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
FLOOR_TARGET = 0.5
GATEWAY_TARGET = 0.8

# backend key -> title; "gateway" is the task service measured through the gateway.
BACKENDS = {
    "floor": "floor: FastAPI + one Core statement, no auth",
    "plain": "plain FastAPI + SQLModel, own HS256 check",
    "service": "task service direct (gateway assertion)",
    "gateway": "task service through the gateway",
}


def key(database: str, operation: str, backend: str) -> str:
    return f"{database}/{operation}/{backend}"


@dataclass
class Databases:
    """Where each backend's data lives: a new SQLite file, or a new database on the PostgreSQL server the
    task-service tests start (tests/task_service/postgres.py), per backend and run."""

    bench: Bench
    postgres: PostgresServer | None = None
    postgres_reason: str = ""

    def url(self, database: str, name: str) -> str:
        if database == "sqlite":
            return self.bench.stack.sqlite_url(name)
        if self.postgres is None:
            raise Unavailable(self.postgres_reason or "no PostgreSQL server")
        return in_thread(self.postgres.create_database(f"bench_{name}"))

    def server_cpu(self, database: str) -> Callable[[], float] | None:
        """CPU of the database server, for PostgreSQL (SQLite runs inside the app and is counted there)."""
        if database != "postgresql" or self.postgres is None:
            return None
        pid = server_pid(self.postgres.port)
        return lambda: tree_cpu_seconds(pid)


@contextmanager
def databases(bench: Bench, kinds: tuple[str, ...]) -> Iterator[Databases]:
    """PostgreSQL is started (from the bench's core 1, which its processes inherit) only when asked for."""
    if "postgresql" not in kinds:
        yield Databases(bench)
        return
    try:
        with running_postgres() as server:
            yield Databases(bench, server)
    except PostgresUnavailable as exc:
        yield Databases(bench, postgres_reason=f"PostgreSQL did not start: {str(exc)[:120]}")


def _titles(database: str, backends: tuple[str, ...]) -> list[tuple[str, str]]:
    return [
        (key(database, op, backend), f"{BACKENDS[backend]}: {op} ({DB_TITLES[database]})")
        for backend in backends
        for op in OPERATIONS
    ]


def _na(bench: Bench, titles: list[tuple[str, str]], reason: str) -> None:
    print(f"  n/a: {reason}", flush=True)
    bench.rows += [Row(title, 64, na_reason=reason, key=k, section=SECTION) for k, title in titles]


def _seed(server: Server, make: Callable[[], list[Request]]) -> None:
    for _ in range(SEED_TASKS_PER_USER):
        for req in make():
            expect(server, req, 201)


def _expect_page(server: Server, req: Request) -> None:
    """A list that does not answer the seeded tasks is not doing the work it is compared on."""
    status, body = request_once(server.port, req)
    if status != 200 or len(json.loads(body)) != SEED_TASKS_PER_USER:
        raise Unavailable(f"{server.name} did not list the {SEED_TASKS_PER_USER} seeded tasks (status {status})")


def _sum(*readers: Callable[[], float] | None) -> Callable[[], float] | None:
    present = [r for r in readers if r is not None]
    return (lambda: sum(r() for r in present)) if present else None


@dataclass(frozen=True)
class Clients:
    """What each backend's callers send: no credential (floor), the user's own HS256 token (the SQLModel
    reference, the gateway) or a gateway assertion signed as the gateway would (the service directly)."""

    stack: Stack
    user_tokens: list[str]

    @classmethod
    def of(cls, stack: Stack) -> Clients:
        return cls(stack, [tokens.hs256_token(stack.jwt_secret, tokens.user_id(i)) for i in range(pools.E2E_USERS)])

    def requests(self, backend: str, operation: str, count: int = pools.ASSERTED_POOL) -> Callable[[], list[Request]]:
        """Built anew before each wrk run: assertions live 30 s and are accepted once, so the service's pool
        holds `count` of them (one per user when seeding and checking)."""
        method = METHODS[operation]
        if backend == "floor":
            return partial(pools.unauthenticated, method, pools.E2E_USERS)
        if backend == "service":
            return partial(pools.asserted, self.stack.internal_secret, method, pools.E2E_USERS, count)
        return partial(pools.bearer_pool if operation == "list" else pools.bearer_creates, self.user_tokens)


def prepared(clients: Clients, backend: str, database_url: str) -> Server:
    """`backend` (floor, plain or service) started on core 0 on a fresh database, seeded with its own creates,
    and checked: it lists the seeded tasks and refuses what it must refuse."""
    stack = clients.stack
    if backend == "service":
        server = stack.task_service(database_url)
    else:
        server = stack.service_reference(backend, database_url)
    _seed(server, clients.requests(backend, "create", pools.E2E_USERS))
    _expect_page(server, clients.requests(backend, "list", pools.E2E_USERS)()[0])
    if backend == "plain":
        forged = tokens.hs256_token(tokens.new_secret(), tokens.user_id(0))
        expect(server, pools.bearer_pool([forged])[0], 401)
        expect(server, _other_user(clients.user_tokens), 403)
    if backend == "service":
        expect(server, Request("GET", pools.tasks_path(0), {}), 401)
    return server


def gateway_in_front(clients: Clients, service: Server) -> Server:
    """The gateway as deployed (access log on) on core 1, forwarding to the service."""
    gateway = clients.stack.gateway(service, cores=SUPPORT_CORES, access_log=True)
    _expect_page(gateway, clients.requests("gateway", "list")()[0])
    return gateway


class _Suite:
    def __init__(self, bench: Bench, dbs: Databases, load: Load) -> None:
        self.bench, self.dbs, self.load = bench, dbs, load
        self.clients = Clients.of(bench.stack)

    def case(
        self, database: str, operation: str, backend: str, server: Server, behind: Callable[[], float] | None
    ) -> None:
        title = f"{BACKENDS[backend]}: {operation} ({DB_TITLES[database]})"
        make = self.clients.requests(backend, operation)
        self.bench.case(
            key(database, operation, backend), title, server, make, load=self.load, behind=behind, section=SECTION
        )

    def reference(self, database: str, backend: str) -> None:
        """The floor or the SQLModel backend, timed on list then create."""
        try:
            server = prepared(self.clients, backend, self.dbs.url(database, backend))
        except Unavailable as exc:
            _na(self.bench, _titles(database, (backend,)), str(exc))
            return
        for op in OPERATIONS:
            self.case(database, op, backend, server, self.dbs.server_cpu(database))
        self.bench.stack.stop(server)

    def service(self, database: str) -> None:
        """The task service directly and through the gateway, list then create."""
        try:
            service = prepared(self.clients, "service", self.dbs.url(database, "service"))
            gateway = gateway_in_front(self.clients, service)
        except Unavailable as exc:
            _na(self.bench, _titles(database, ("service", "gateway")), str(exc))
            return
        db_cpu = self.dbs.server_cpu(database)
        behind_gateway = _sum(lambda: cpu_seconds(service.process), db_cpu)
        for op in OPERATIONS:
            self.case(database, op, "service", service, db_cpu)
            self.case(database, op, "gateway", gateway, behind_gateway)
        self.bench.stack.stop(gateway)
        self.bench.stack.stop(service)


def _other_user(user_tokens: list[str]) -> Request:
    """User 1's token on user 0's path: every backend that checks auth must answer 403."""
    return Request("GET", pools.tasks_path(0), {"Authorization": f"Bearer {user_tokens[1]}"})


def run(bench: Bench, kinds: tuple[str, ...], load: Load) -> None:
    with databases(bench, kinds) as dbs:
        suite = _Suite(bench, dbs, load)
        for database in kinds:
            print(f"task service on {DB_TITLES[database]}", flush=True)
            suite.reference(database, "floor")
            suite.reference(database, "plain")
            suite.service(database)


def render(rows: list[Row], results: dict[str, WrkResult]) -> str:
    """One table of every service case, with its ratios to the floor and to the SQLModel reference."""
    lines = [
        "| case | req/s | p50 ms | p99 ms | errors | CPU µs/req | core % | core 1 busy % | CPU µs/req behind it "
        "| × floor (cpu) | × SQLModel (cpu) | comparison |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in (row for row in rows if row.section == SECTION):
        r = row.result
        if r is None:
            lines.append(f"| {row.case} | n/a | n/a | n/a | n/a | | | | | | | {row.na_reason} |")
            continue
        database, operation, backend = row.key.split("/")
        floor, plain = results.get(key(database, operation, "floor")), results.get(key(database, operation, "plain"))
        behind = fmt(r.behind_cpu_us_per_request, 0) if r.behind_cpu_s is not None else ""
        compare = ""
        if backend == "gateway":
            compare = f"× {ratio(r, results.get(key(database, operation, 'service')))} of direct"
        vs_floor = efficiency(r, floor) if backend in ("plain", "service") else ""
        vs_plain = efficiency(r, plain) if backend == "service" else ""
        lines.append(
            f"| {row.case} | {r.rps:,.0f} | {r.p50_us / 1000:.2f} | {r.p99_us / 1000:.2f} | {r.errors} "
            f"| {cpu_columns(r)} | {behind} | {vs_floor} | {vs_plain} | {compare} |"
        )
    return "\n".join(lines)


def _target(results: dict[str, WrkResult], database: str, operation: str, kind: str) -> str:
    service = results.get(key(database, operation, "service"))
    if kind == "floor":
        floor = results.get(key(database, operation, "floor"))
        by_rps = rps_ratio(service, floor)
        return "n/a" if by_rps is None else f"{by_rps:.2f} × ({'met' if by_rps >= FLOOR_TARGET else 'not met'})"
    if kind == "plain":
        plain = results.get(key(database, operation, "plain"))
        if service is None or plain is None or not service.cpu_us_per_request or not plain.cpu_us_per_request:
            return "n/a"
        ok = service.cpu_us_per_request <= plain.cpu_us_per_request
        return f"{service.cpu_us_per_request:.0f} vs {plain.cpu_us_per_request:.0f} µs ({'met' if ok else 'not met'})"
    via = rps_ratio(results.get(key(database, operation, "gateway")), service)
    return "n/a" if via is None else f"{via:.2f} × ({'met' if via >= GATEWAY_TARGET else 'not met'})"


def render_targets(results: dict[str, WrkResult], kinds: tuple[str, ...]) -> str:
    lines = [
        "| target | " + " | ".join(DB_TITLES[d] for d in kinds) + " |",
        "|---|" + "---:|" * len(kinds),
    ]
    names = {
        "floor": f"{{op}}: task service ≥ {FLOOR_TARGET} × the floor's requests/s, one core each",
        "plain": "{op}: task service CPU per request ≤ the SQLModel reference's",
        "gateway": f"{{op}}: through the gateway ≥ {GATEWAY_TARGET} × the service's direct requests/s",
    }
    for kind, name in names.items():
        for op in OPERATIONS:
            cells = " | ".join(_target(results, d, op, kind) for d in kinds)
            lines.append(f"| {name.format(op=op)} | {cells} |")
    return "\n".join(lines)
