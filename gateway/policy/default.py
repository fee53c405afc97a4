"""The built-in policy used when no policy file is configured: exactly today's task API.

Three routes to the upstream `task-service` (GATEWAY_UPSTREAM_URL), each requiring the path's user id to be
the token's `sub`, accepting the one issuer `default` made from the GATEWAY_JWT_* / GATEWAY_JWKS_* settings.
`deploy/policy.example.yaml` writes the same policy out (a test holds them equal).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..settings import GatewaySettings
from .claims import ClaimRef, MatchRule
from .errors import PolicyError
from .file import load_policy
from .model import Issuer, Policy, Route, Upstream
from .templates import parse_template

# The assertion audience the task service checks: the default upstream is named after it, so nothing changes
# for the service when assertions start naming their upstream.
DEFAULT_UPSTREAM = "task-service"
DEFAULT_ISSUER = "default"
DEFAULT_SOURCE = "built-in default policy"
TASK_ROUTES = (
    ("/api/{user_id}/tasks", ("GET", "POST")),
    ("/api/{user_id}/tasks/{id:int}", ("GET", "PUT", "PATCH", "DELETE")),
    ("/api/{user_id}/tasks/{id:int}/complete", ("PATCH",)),
)


def default_issuer(settings: GatewaySettings) -> Issuer | None:
    """The issuer the GATEWAY_JWT_* / GATEWAY_JWKS_* settings describe; None when they name neither a secret
    nor a JWKS URL (allowed only with a policy file, whose `issuers:` then must say where tokens come from)."""
    if not settings.user_secrets and settings.jwks_url is None:
        return None
    return Issuer(
        name=DEFAULT_ISSUER,
        jwks_url=settings.jwks_url,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        secret_env="GATEWAY_JWT_SECRET" if settings.user_secrets else None,
        secrets=settings.user_secrets,
    )


def default_policy(settings: GatewaySettings) -> Policy:
    issuer = default_issuer(settings)
    if issuer is None:
        raise PolicyError(DEFAULT_SOURCE, None, None, "set GATEWAY_JWT_SECRET or GATEWAY_JWKS_URL")
    upstream = Upstream(DEFAULT_UPSTREAM, settings.upstream_url)
    owner = (MatchRule("user_id", ClaimRef.parse("sub")),)
    routes = tuple(
        Route(
            index=index,
            template=parse_template(path),
            methods=frozenset(methods),
            upstream=upstream,
            issuers=(DEFAULT_ISSUER,),
            match=owner,
        )
        for index, (path, methods) in enumerate(TASK_ROUTES, start=1)
    )
    return Policy(routes=routes, upstreams=(upstream,), issuers=(issuer,), source=DEFAULT_SOURCE)


def configured_policy(settings: GatewaySettings, path: Path | None, environ: Mapping[str, str]) -> Policy:
    """The policy to run: the file at `path` (validated; raises PolicyError) or, without one, the default."""
    if path is None:
        return default_policy(settings)
    return load_policy(
        path, environ=environ, fallback_issuer=default_issuer(settings), reserved_secrets=settings.internal_secrets
    )
