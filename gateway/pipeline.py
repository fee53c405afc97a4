"""The gateway's request path, in the order it runs: parse → authenticate → authorise → forward → respond.

Each step lives in its own module; this file only wires them, so the flow reads top to bottom in
`Gateway.handle`. Every failure on the way is a GatewayError carrying the contract's status code.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from aiohttp import HttpVersion10, HttpVersion11, http_exceptions

from . import openapi
from .auth.extract import AuthorizationMalformed, bearer_token
from .auth.jwks import JwksCache
from .auth.revocations import revocation_feed
from .auth.verifier import Identity, InvalidToken, RevocationsUnavailable, TokenVerifier
from .errors import GatewayError, error_response
from .http.bodies import BodyTooLarge, read_stream
from .http.messages import SERVER_NAME, Reply, Request, internal_error, json_reply
from .http.streaming import STREAM_OUTCOMES
from .http.upstream_pool import Upstream
from .ops.logs import AccessLog
from .ops.metrics import GatewayMetrics
from .policy.assertion import AssertionSigner
from .policy.cors import Cors
from .policy.headers import UnsafeHeader, client_response_headers, request_id, upstream_request_headers
from .policy.paths import ROUTE_OTHER, BadTarget, NotRouted, Target, checked_target, route_label
from .policy.ratelimit import RateLimiter
from .settings import GatewaySettings

log = logging.getLogger("gateway")

CHALLENGE = 'Bearer realm="taskgate"'
CHALLENGE_INVALID = 'Bearer realm="taskgate", error="invalid_token"'
CHALLENGE_MALFORMED = 'Bearer realm="taskgate", error="invalid_request"'
SUPPORTED_VERSIONS = (HttpVersion10, HttpVersion11)
PROBES = ("/healthz", "/readyz")


class Pipeline:
    """Holds the per-process collaborators; stateless across requests apart from caches."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics()
        self.upstream = Upstream(
            settings.upstream_url,
            timeout_s=settings.upstream_timeout_s,
            connect_timeout_s=settings.upstream_connect_timeout_s,
            pool_size=settings.upstream_pool_size,
        )
        self.signer = AssertionSigner(settings.internal_secrets[0])
        self.cors = Cors(settings.cors_origins)
        self.jwks: JwksCache | None = None
        self.revocations = revocation_feed(settings)
        self.tokens = TokenVerifier(
            hmac_secrets=settings.user_secrets,
            keys=None,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway_s=settings.jwt_leeway_s,
            max_ttl_s=settings.jwt_max_ttl_s,
            cache_size=settings.token_cache_size,
            revocations=self.revocations.revoked if self.revocations is not None else None,
        )
        self.limiter = (
            RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst) if settings.rate_limit_per_s else None
        )
        self.access_log = AccessLog() if settings.access_log else None
        self.draining = False
        self.metrics.watch(self)

    async def start(self) -> None:
        if self.access_log is not None:
            self.access_log.start(asyncio.get_running_loop())
        await self.upstream.start()
        if self.settings.jwks_url:
            self.jwks = JwksCache(
                self.settings.jwks_url,
                session=self.upstream.session,
                cache_s=self.settings.jwks_cache_s,
                cooldown_s=self.settings.jwks_refetch_cooldown_s,
                timeout_s=self.settings.jwks_timeout_s,
                max_bytes=self.settings.jwks_max_bytes,
                on_change=self.tokens.forget_all,
            )
            self.tokens.use_keys(self.jwks)
            await self.jwks.refresh()
        if self.revocations is not None:
            await self.revocations.start(self.upstream.session)

    async def stop(self) -> None:
        if self.revocations is not None:
            await self.revocations.stop()
        await self.upstream.close()
        if self.access_log is not None:
            self.access_log.flush()

    async def handle(self, request: Request) -> Reply:
        """The connection's handler: every request the parser accepted gets exactly one Reply from here."""
        if request.target in PROBES and request.method != "OPTIONS":  # a preflight to a probe is a preflight
            return await self._probe(request)
        if request.target == openapi.PATH and request.method != "OPTIONS" and self.settings.openapi_document:
            return self._publish(request, self.settings.openapi_document)
        started = time.perf_counter()
        rid = request_id(request.headers.getall("X-Request-Id", ()))
        route, user, outcome = ROUTE_OTHER, None, None
        try:
            self._check_http(request)
            if request.method == "OPTIONS":
                # A preflight is no authorisation decision: answered for any target (cors.py), so that the real
                # request runs and the page reads its real status, a 400 or 404 included.
                route = route_label(request.target)
                reply = self.cors.preflight(request.headers)
                outcome = "preflight"
            else:
                target = self._parse(request)
                route = target.route
                self._check_method(request, target)
                token = self._bearer(request)
                identity = self.tokens.remembered(token) or await self._verify(token)
                user = identity.user_id
                self._authorise(identity, target)
                reply = await self._forward(request, target, identity, rid)
        except GatewayError as exc:
            reply = error_response(exc.status, exc.detail, exc.headers)
            reply.close = exc.status in (408, 413)
        except Exception as exc:  # a bug: still a JSON 500 with CORS, counted and logged like any answer
            reply, outcome = internal_error(exc), "internal_error"
        return self._respond(request, reply, rid, route, user, outcome, started)

    # 1. parse
    @staticmethod
    def _check_http(request: Request) -> None:
        if request.version not in SUPPORTED_VERSIONS:
            # llhttp reads a request line without a version (HTTP/0.9) and then still parses header lines.
            raise GatewayError(400, "unsupported HTTP version")
        expect = request.headers.get("Expect")
        if expect is not None and expect.lower() != "100-continue":
            raise GatewayError(417, "only Expect: 100-continue is supported")

    @staticmethod
    def _parse(request: Request) -> Target:
        try:
            return checked_target(request.target)
        except BadTarget as exc:
            raise GatewayError(400, str(exc)) from None
        except NotRouted:
            raise GatewayError(404, "not found") from None

    @staticmethod
    def _check_method(request: Request, target: Target) -> None:
        if request.method not in target.methods:
            raise GatewayError(405, "method not allowed", {"Allow": ", ".join(sorted(target.methods))})

    # 2. authenticate
    @staticmethod
    def _bearer(request: Request) -> str:
        try:
            token = bearer_token(request.headers.getall("Authorization", []))
        except AuthorizationMalformed as exc:
            raise GatewayError(400, str(exc), {"WWW-Authenticate": CHALLENGE_MALFORMED}) from None
        if token is None:
            raise GatewayError(401, "bearer token required", {"WWW-Authenticate": CHALLENGE})
        return token

    async def _verify(self, token: str) -> Identity:
        """A token not seen (or expired) in the cache: full verification, possibly a JWKS fetch."""
        try:
            return await self.tokens.verify(token)
        except InvalidToken as exc:
            log.info("token rejected", extra={"reason": str(exc)})
            raise GatewayError(401, "invalid token", {"WWW-Authenticate": CHALLENGE_INVALID}) from None
        except RevocationsUnavailable:
            raise GatewayError(503, "revocations not loaded yet", {"Retry-After": "1"}) from None

    # 3. authorise
    def _authorise(self, identity: Identity, target: Target) -> None:
        if identity.user_id != target.user_id:
            raise GatewayError(403, "token does not grant access to this user's tasks")
        if self.limiter is not None:
            self.limiter.check(identity.user_id)

    # 4. forward
    async def _forward(self, request: Request, target: Target, identity: Identity, rid: str) -> Reply:
        body = await self._read_body(request) if request.has_body else b""
        try:
            headers = upstream_request_headers(
                request.headers,
                user_id=identity.user_id,
                assertion=self.signer.sign(
                    method=request.method, target=target.forwarded, user_id=identity.user_id, request_id=rid
                ),
                request_id=rid,
                peer=request.peer,
                scheme="http",
            )
        except UnsafeHeader as exc:
            raise GatewayError(400, f"header {exc} holds a control character") from None
        upstream = await self.upstream.send(request.method, target.forwarded, headers, body)
        return Reply(upstream.status, client_response_headers(upstream.headers), upstream.body, stream=upstream.stream)

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise GatewayError(413, "request body too large")
        codings = {c.strip().lower() for v in request.headers.getall("Content-Encoding", ()) for c in v.split(",")}
        if codings - {"identity"}:
            raise GatewayError(415, "compressed request bodies are not accepted")
        request.send_continue()
        try:
            async with asyncio.timeout(self.settings.body_timeout_s):
                return await read_stream(request.body, limit)
        except BodyTooLarge:
            raise GatewayError(413, "request body too large") from None
        except TimeoutError:
            raise GatewayError(408, "request body timeout") from None
        except (http_exceptions.HttpProcessingError, ConnectionError):
            raise GatewayError(400, "malformed request body") from None

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
            reply = error_response(405, "method not allowed", {"Allow": "GET", "Server": SERVER_NAME})
        elif request.target == "/healthz":
            reply = json_reply(200, {"status": "ok"}, [("Server", SERVER_NAME)])
        else:
            checks = {"accepting": not self.draining, "upstream": await self.upstream.ready()}
            if self.jwks is not None:
                checks["jwks"] = self.jwks.ready
            if self.revocations is not None:
                checks["revocations"] = self.revocations.ready
            ready = all(checks.values())
            body: dict[str, object] = {"ready": ready, "checks": checks}
            if self.revocations is not None:
                body["revocations"] = self.revocations.status()
            reply = json_reply(200 if ready else 503, body, [("Server", SERVER_NAME)])
        self.cors.decorate(request.headers, reply.headers)
        return reply
