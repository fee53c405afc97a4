"""The gateway's request path, in the order it runs: parse → authenticate → authorise → forward → respond.

Each step lives in its own layer (`http/`, `auth/`, `policy/`); this file only wires them, so the flow reads
top to bottom in `Pipeline.handle`. A step that refuses raises its own domain error; `errors.py` alone turns
it into the answer. The policy (routes, upstreams, issuers) is data held in a `Runtime`, swapped whole by
`reload` (SIGHUP).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time

import aiohttp

from . import errors, openapi
from .auth.extract import required_bearer
from .auth.revocations import revocation_feed
from .auth.verifier import Identity, InvalidToken, Revocations
from .http.bodies import read_request_body
from .http.client import outbound_session
from .http.messages import SERVER_NAME, Reply, Request, check_request, error_response, internal_error, json_reply
from .http.streaming import STREAM_OUTCOMES
from .http.upstream_pool import Upstream
from .ops.logs import AccessLog
from .ops.metrics import GatewayMetrics
from .policy.assertion import AssertionSigner
from .policy.cors import Cors
from .policy.default import configured_policy
from .policy.errors import PolicyError
from .policy.headers import client_response_headers, request_id, upstream_request_headers
from .policy.match import Located, authorise, bound_claim_headers, check_method, claim_headers
from .policy.model import Policy
from .policy.ratelimit import RateLimiter
from .runtime import ROUTE_OTHER, Runtime, retired_pools, start_runtime
from .settings import GatewaySettings

log = logging.getLogger("gateway")

PROBES = ("/healthz", "/readyz")


class Pipeline:
    """Holds the per-process collaborators; stateless across requests apart from caches."""

    def __init__(self, settings: GatewaySettings, policy: Policy) -> None:
        self.settings = settings
        self._policy = policy
        self.metrics = GatewayMetrics()
        self.signer = AssertionSigner(settings.internal_secrets[0])
        self.cors = Cors(settings.cors_origins)
        self.revocations = revocation_feed(settings)
        self.limiter = (
            RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst) if settings.rate_limit_per_s else None
        )
        self.access_log = AccessLog() if settings.access_log else None
        self.draining = False
        # The running policy; set by start(), replaced whole by reload(). Read once per request.
        self.runtime: Runtime | None = None
        self._session: aiohttp.ClientSession | None = None
        self._reloading = asyncio.Lock()
        self._retiring: dict[asyncio.Task[None], Upstream] = {}  # pools closing once their requests are answered
        self.metrics.watch(self)

    async def start(self) -> None:
        if self.access_log is not None:
            self.access_log.start(asyncio.get_running_loop())
        self._session = outbound_session(
            timeout_s=self.settings.upstream_timeout_s, connect_timeout_s=self.settings.upstream_connect_timeout_s
        )
        self.runtime = await start_runtime(
            self._policy, self.settings, self._session, revocations=self._revocation_list()
        )
        if self.revocations is not None:
            await self.revocations.start(self._session)

    async def stop(self) -> None:
        if self.revocations is not None:
            await self.revocations.stop()
        for task, pool in list(self._retiring.items()):
            task.cancel()
            await pool.close()
        for pool in self.runtime.pools.values() if self.runtime is not None else ():
            await pool.close()
        if self._session is not None:
            await self._session.close()
        if self.access_log is not None:
            self.access_log.flush()

    def _revocation_list(self) -> Revocations | None:
        return self.revocations.revoked if self.revocations is not None else None

    def _started(self) -> tuple[Runtime, aiohttp.ClientSession]:
        if self.runtime is None or self._session is None:
            raise RuntimeError("Pipeline.start() was not awaited")
        return self.runtime, self._session

    async def reload(self) -> bool:
        """Read GATEWAY_POLICY_FILE again and swap the policy in whole; a file that does not validate is refused
        with one log line and the running policy stays. True when the new policy runs."""
        path = self.settings.policy_file
        if path is None:
            log.warning("policy reload: GATEWAY_POLICY_FILE is not set; the built-in default policy stays")
            return False
        async with self._reloading:  # two SIGHUPs in a row: one swap after the other
            try:
                policy = configured_policy(self.settings, path, os.environ)
            except PolicyError as exc:
                log.error("policy reload refused, the running policy stays: %s", exc)
                return False
            old, session = self._started()
            new = await start_runtime(policy, self.settings, session, revocations=self._revocation_list(), previous=old)
            self.runtime = new  # one assignment: a request runs under the old or the new policy, never both
            for pool in retired_pools(old, new):
                task = asyncio.get_running_loop().create_task(pool.retire())
                self._retiring[task] = pool
                task.add_done_callback(self._forget_retired)
        log.info(
            "policy reloaded from %s: %d routes, %d upstreams, %d issuers",
            policy.source,
            len(policy.routes),
            len(policy.upstreams),
            len(policy.issuers),
        )
        return True

    def _forget_retired(self, task: asyncio.Task[None]) -> None:
        self._retiring.pop(task, None)

    async def handle(self, request: Request) -> Reply:
        """The connection's handler: every request the parser accepted gets exactly one Reply from here."""
        if request.target in PROBES and request.method != "OPTIONS":  # a preflight to a probe is a preflight
            return await self._probe(request)
        if request.target == openapi.PATH and request.method != "OPTIONS" and self.settings.openapi_document:
            return self._publish(request, self.settings.openapi_document)
        started = time.perf_counter()
        rid = request_id(request.headers.getall("X-Request-Id", ()))
        runtime = self.runtime  # this request's policy, start to finish
        if runtime is None:
            raise RuntimeError("Pipeline.start() was not awaited")
        label, user, outcome = ROUTE_OTHER, None, None
        try:
            check_request(request)
            if request.method == "OPTIONS":
                # A preflight is no authorisation decision: answered for any target (cors.py), so that the real
                # request runs and the page reads its real status, a 400 or 404 included.
                label = runtime.label(request.target)
                reply = self.cors.preflight(request.headers, runtime.methods)
                outcome = "preflight"
            else:
                # 1. parse
                located = runtime.router.locate(request.target)
                route = located.route
                label = route.template.label
                check_method(route, request.method)
                identity = None
                if route.auth_required:
                    # 2. authenticate
                    identity = await self._authenticate(request, runtime)
                    user = identity.user_id
                    # 3. authorise
                    authorise(route, located.params, identity.issuer, identity.claims)
                    if self.limiter is not None:
                        self.limiter.check((identity.issuer, identity.user_id))
                reply = await self._forward(request, runtime, located, identity, rid)
        except Exception as exc:
            answer = errors.answer_for(exc)
            if answer is None:  # a bug: still a JSON 500 with CORS, counted and logged like any answer
                answer, outcome = internal_error(exc), "internal_error"
            reply = answer
        return self._respond(request, reply, rid, label, user, outcome, started)

    # 2. authenticate
    @staticmethod
    async def _authenticate(request: Request, runtime: Runtime) -> Identity:
        """The verified caller: a remembered verdict (the common case, no coroutine), else a full verification,
        possibly a JWKS fetch. The verifier checks revocations on both paths."""
        token = required_bearer(request.headers.getall("Authorization", []))
        verifier = runtime.verifier
        try:
            return verifier.remembered(token) or await verifier.verify(token)
        except InvalidToken as exc:
            log.info("token rejected", extra={"reason": str(exc)})
            raise

    # 4. forward
    async def _forward(
        self, request: Request, runtime: Runtime, located: Located, identity: Identity | None, rid: str
    ) -> Reply:
        settings = self.settings
        body = (
            await read_request_body(request, limit=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
            if request.has_body
            else b""
        )
        route = located.route
        upstream = route.upstream
        user = identity.user_id if identity is not None else None
        claims = claim_headers(route, identity.claims) if identity is not None and route.headers else []
        bound = bound_claim_headers(route, claims) if route.headers else None

        def signed_headers() -> list[tuple[str, str]]:
            """The upstream request's headers with a fresh single-use assertion (again for a resent request)."""
            return upstream_request_headers(
                request.headers,
                user_id=user,
                claims=claims,
                assertion=self.signer.sign(
                    audience=upstream.name,
                    method=request.method,
                    target=located.forwarded,
                    body=body,
                    user_id=user,
                    request_id=rid,
                    claim_headers=bound,
                ),
                request_id=rid,
                peer=request.peer,
                scheme="http",
            )

        pool = runtime.pools[upstream.name]
        answer = await pool.send(request.method, located.forwarded, signed_headers(), body, resign=signed_headers)
        try:
            return Reply(answer.status, client_response_headers(answer.headers), answer.body, stream=answer.stream)
        except BaseException:
            if answer.stream is not None:  # never reaches the connection: free its upstream connection and slot
                answer.stream.abort()
            raise

    # 5. respond
    def _respond(
        self,
        request: Request,
        reply: Reply,
        rid: str,
        route: str,
        user: str | None,
        outcome: str | None,
        started: float,
    ) -> Reply:
        self.cors.decorate(request.headers, reply.headers)
        reply.headers.append(("X-Request-Id", rid))
        reply.headers.append(("Server", SERVER_NAME))
        if reply.stream is None:
            self._record(request, reply.status, rid, route, user, started, outcome)
        else:  # recorded when its last byte is written (or the relay is cut off), with how it ended
            reply.stream.on_end = functools.partial(self._record, request, reply.status, rid, route, user, started)
        return reply

    def _record(
        self, request: Request, status: int, rid: str, route: str, user: str | None, started: float, outcome: str | None
    ) -> None:
        elapsed = time.perf_counter() - started
        self.metrics.observe(route, request.method, status, outcome, elapsed)
        if self.access_log is not None:
            self.access_log.record(
                method=request.method,
                route=route,
                status=status,
                seconds=elapsed,
                request_id=rid,
                user=user,
                peer=request.peer,
                outcome=outcome if outcome in STREAM_OUTCOMES else None,
            )

    def _publish(self, request: Request, document: bytes) -> Reply:
        """GET /openapi.json: no token, never forwarded; logged, counted and CORS-decorated like the API."""
        started = time.perf_counter()
        rid = request_id(request.headers.getall("X-Request-Id", ()))
        reply = openapi.reply(document, request.method)
        return self._respond(request, reply, rid, openapi.ROUTE, None, None, started)

    async def _probe(self, request: Request) -> Reply:
        """Liveness and readiness for orchestrators; GET only, no token, never forwarded, readable by a page."""
        if request.method != "GET":
            reply = error_response(405, "method not allowed", [("Allow", "GET"), ("Server", SERVER_NAME)])
        elif request.target == "/healthz":
            reply = json_reply(200, {"status": "ok"}, [("Server", SERVER_NAME)])
        else:
            reply = await self._readiness()
        self.cors.decorate(request.headers, reply.headers)
        return reply

    async def _readiness(self) -> Reply:
        """Ready when accepting, every upstream answers its /readyz, every issuer's key set is loaded, and the
        revocations (when configured) are loaded: each named in the answer, so an operator sees which is not."""
        runtime, session = self._started()
        names = list(runtime.pools)
        answers = await asyncio.gather(*(runtime.pools[name].ready(session) for name in names))
        upstreams = dict(zip(names, answers, strict=True))
        key_sets = {name: key_set.ready for name, key_set in runtime.issuer_key_sets().items()}
        checks = {"accepting": not self.draining, "upstream": all(upstreams.values())}
        if key_sets:
            checks["jwks"] = all(key_sets.values())
        if self.revocations is not None:
            checks["revocations"] = self.revocations.ready
        ready = all(checks.values())
        body: dict[str, object] = {"ready": ready, "checks": checks, "upstreams": upstreams}
        if key_sets:
            body["jwks"] = key_sets
        if self.revocations is not None:
            body["revocations"] = self.revocations.status()
        return json_reply(200 if ready else 503, body, [("Server", SERVER_NAME)])
