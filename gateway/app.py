"""The gateway's request path, in the order it runs: parse → authenticate → authorise → forward → respond.

Each step lives in its own module; this file only wires them, so the flow can be read top to bottom in
`Gateway.handle`. Every failure on the way is a GatewayError carrying the contract's status code.
"""

from __future__ import annotations

import logging

from aiohttp import web

from .assertion import AssertionSigner
from .cors import Cors
from .errors import GatewayError, error_response
from .forward import Upstream
from .headers import client_response_headers, request_id, upstream_request_headers
from .jwks import JwksCache
from .paths import BadTarget, NotRouted, Target, parse_target
from .settings import GatewaySettings
from .tokens import AuthorizationMalformed, Identity, InvalidToken, TokenVerifier, bearer_token

log = logging.getLogger("gateway")


SERVER_NAME = "taskgate"
CHALLENGE = 'Bearer realm="taskgate"'
CHALLENGE_INVALID = 'Bearer realm="taskgate", error="invalid_token"'
CHALLENGE_MALFORMED = 'Bearer realm="taskgate", error="invalid_request"'


class Gateway:
    """Holds the per-process collaborators; stateless across requests apart from caches."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.upstream = Upstream(
            settings.upstream_url,
            timeout_s=settings.upstream_timeout_s,
            connect_timeout_s=settings.upstream_connect_timeout_s,
            pool_size=settings.upstream_pool_size,
        )
        self.signer = AssertionSigner(settings.internal_secrets[0])
        self.cors = Cors(settings.cors_origins)
        self.jwks: JwksCache | None = None
        self.draining = False
        self.tokens = TokenVerifier(
            hmac_secrets=settings.user_secrets,
            keys=None,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway_s=settings.jwt_leeway_s,
            max_ttl_s=settings.jwt_max_ttl_s,
            cache_size=settings.token_cache_size,
        )

    async def start(self, _app: web.Application) -> None:
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

    async def stop(self, _app: web.Application) -> None:
        await self.upstream.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            response = await self._pass(request)
        except GatewayError as exc:
            response = error_response(exc.status, exc.detail, exc.headers)
            if exc.status == 413:
                response.force_close()
        self.cors.decorate(request, response)
        response.headers["Server"] = SERVER_NAME
        return response

    async def _pass(self, request: web.Request) -> web.StreamResponse:
        target = self._parse(request)
        if request.method == "OPTIONS":
            return self.cors.preflight(request)
        if request.method not in target.methods:
            raise GatewayError(405, "method not allowed", {"Allow": ", ".join(sorted(target.methods))})
        identity = await self._authenticate(request)
        self._authorise(identity, target)
        return await self._forward(request, target, identity)

    @staticmethod
    def _parse(request: web.Request) -> Target:
        try:
            return parse_target(request.raw_path)
        except BadTarget as exc:
            raise GatewayError(400, str(exc)) from None
        except NotRouted:
            raise GatewayError(404, "not found") from None

    async def _authenticate(self, request: web.Request) -> Identity:
        try:
            token = bearer_token(request.headers.getall("Authorization", []))
        except AuthorizationMalformed as exc:
            raise GatewayError(400, str(exc), {"WWW-Authenticate": CHALLENGE_MALFORMED}) from None
        if token is None:
            raise GatewayError(401, "bearer token required", {"WWW-Authenticate": CHALLENGE})
        try:
            return await self.tokens.verify(token)
        except InvalidToken as exc:
            log.info("token rejected: %s", exc)
            raise GatewayError(401, "invalid token", {"WWW-Authenticate": CHALLENGE_INVALID}) from None

    @staticmethod
    def _authorise(identity: Identity, target: Target) -> None:
        if identity.user_id != target.user_id:
            raise GatewayError(403, "token does not grant access to this user's tasks")

    async def _forward(self, request: web.Request, target: Target, identity: Identity) -> web.Response:
        body = await self._read_body(request)
        rid = request_id(request.headers.getall("X-Request-Id", ()))
        headers = upstream_request_headers(
            request.headers,
            user_id=identity.user_id,
            assertion=self.signer.sign(
                method=request.method, target=target.raw, user_id=identity.user_id, request_id=rid
            ),
            request_id=rid,
            peer=request.remote or "",
            scheme=request.scheme,
        )
        upstream = await self.upstream.send(request.method, target.raw, headers, body)
        return web.Response(
            status=upstream.status,
            body=upstream.body,
            headers=client_response_headers(upstream.headers, rid),
        )

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.settings.max_body_bytes
        if (request.content_length or 0) > limit:
            raise GatewayError(413, "request body too large")
        if request.headers.get("Content-Encoding", "identity").lower() != "identity":
            raise GatewayError(415, "compressed request bodies are not accepted")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise GatewayError(413, "request body too large") from None

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        checks = {"accepting": not self.draining, "upstream": await self.upstream.ready()}
        if self.jwks is not None:
            checks["jwks"] = self.jwks.ready
        ready = all(checks.values())
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


GATEWAY_KEY = web.AppKey("gateway", Gateway)


def create_app(settings: GatewaySettings) -> web.Application:
    """The aiohttp application; `client_max_size` makes aiohttp itself refuse oversize bodies."""
    gateway = Gateway(settings)
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[GATEWAY_KEY] = gateway
    app.on_startup.append(gateway.start)
    app.on_cleanup.append(gateway.stop)
    app.router.add_get("/healthz", gateway.healthz, allow_head=False)
    app.router.add_get("/readyz", gateway.readyz, allow_head=False)
    app.router.add_route("*", "/{tail:.*}", gateway.handle)
    return app
