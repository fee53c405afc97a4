"""`taskgate policy explain`: one request walked through the policy, so an operator can see why it got a 403.

The decision is made by the same code the gateway runs (`Router.locate`, `check_method`, `authorise`); the
per-check lines around it are for reading. A token is verified here when that needs no network beyond its
issuer's JWKS (HS256 secrets, or the issuer's key set fetched once); when it cannot be, its claims are
decoded *without* verification and the output says so on the token line — the gateway always verifies.
The token itself and the assertion are never printed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from ..auth.issuers import build_verifier, key_sets_for
from ..auth.verifier import InvalidToken
from ..errors import status_of
from ..http.client import outbound_session
from ..settings import GatewaySettings
from .match import (
    Forbidden,
    IssuerNotAccepted,
    MethodNotAllowed,
    Router,
    authorise,
    check_method,
    claim_headers,
)
from .model import Issuer, Policy, Route
from .paths import BadTarget, NotRouted

COLUMN = 9


@dataclass(frozen=True, slots=True)
class Presented:
    """What is known about the presented token: its claims, which issuer it is from (None: cannot tell),
    whether it verified (None: not checked here), and how that was established (one line)."""

    claims: Mapping[str, Any]
    issuer: str | None
    verified: bool | None
    note: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """The printed lines, and the status the gateway would answer (None: forwarded, the upstream answers)."""

    lines: tuple[str, ...]
    status: int | None


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, step: str, text: str) -> None:
        self.lines.append(f"{step:<{COLUMN}} {text}")

    def done(self, status: int | None, answer: str) -> Explanation:
        self.add("answer", answer)
        return Explanation(tuple(self.lines), status)


def _shown(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def explain(router: Router, method: str, target: str, token: Presented | None) -> Explanation:
    """Walk `method target` (with `token`, when given) through the router's policy."""
    out = _Lines()
    policy = router.policy
    out.add("request", f"{method} {target}")
    out.add("policy", f"{policy.source} ({len(policy.routes)} routes)")
    try:
        located = router.locate(target)
    except BadTarget as exc:
        out.add("target", f"REFUSED: {exc} (the strict target checks hold for every route)")
        return out.done(status_of(BadTarget), f"{status_of(BadTarget)}, nothing forwarded")
    except NotRouted:
        out.add("route", "no route's template matches this path")
        return out.done(status_of(NotRouted), f"{status_of(NotRouted)}, nothing forwarded")
    route, params = located.route, located.params
    shown_params = ", ".join(f"{name}={value}" for name, value in params.items()) or "no parameters"
    out.add("route", f"{route.describe()} matched ({shown_params}) → upstream {route.upstream.name}")
    if method == "OPTIONS":
        out.add("method", "OPTIONS is a CORS preflight: the gateway answers it itself (GATEWAY_CORS_ORIGINS)")
        return out.done(204, "204 for an allowed Origin, nothing forwarded")
    try:
        check_method(route, method)
    except MethodNotAllowed as exc:
        out.add("method", f"FAILED: {method} is not one of {', '.join(exc.allow)}")
        return out.done(status_of(MethodNotAllowed), f"405 with Allow: {', '.join(exc.allow)}, nothing forwarded")
    out.add("method", f"ok: {method} is one of {', '.join(sorted(route.methods))}")
    if not route.auth_required:
        out.add("auth", "none: no token needed; Authorization and identity headers are not forwarded")
        return _forwarded(out, method, located.forwarded, route, None)
    if token is None:
        out.add("token", "none presented (pass --token JWT)")
        return out.done(401, "401 with a Bearer challenge, nothing forwarded")
    out.add("token", token.note)
    if token.verified is False:
        return out.done(401, "401 invalid_token, nothing forwarded")
    status = _checks(out, route, params, token)
    if status is not None:
        challenge = " invalid_token" if status == status_of(IssuerNotAccepted) else ""
        return out.done(status, f"{status}{challenge}, nothing forwarded")
    if token.issuer is None:
        return out.done(None, f"forwarded if the token is from one of: {', '.join(route.issuers)}")
    return _forwarded(out, method, located.forwarded, route, token)


def _checks(out: _Lines, route: Route, params: Mapping[str, str], token: Presented) -> int | None:
    """Print every check; the status comes from `authorise` itself, the gateway's own decision."""
    listed = ", ".join(route.issuers)
    if token.issuer is None:
        out.add("issuer", f"? cannot tell which issuer signed it (pass --issuer); this route accepts: {listed}")
    else:
        verdict = "ok" if token.issuer in route.issuers else "FAILED"
        out.add("issuer", f"{verdict}: {token.issuer} (this route accepts: {listed})")
    for rule in route.rules:
        verdict = "ok" if rule.holds(params, token.claims) else "FAILED"
        out.add("rule", f"{verdict}: {rule.describe()} (token has {_shown(list(rule.claim.texts(token.claims)))})")
    try:
        # An issuer not known here: judge the rules as if the token came from an issuer the route accepts.
        authorise(route, params, token.issuer or route.issuers[0], token.claims)
    except IssuerNotAccepted:
        return status_of(IssuerNotAccepted)
    except Forbidden:
        return status_of(Forbidden)
    return None


def _forwarded(out: _Lines, method: str, raw: str, route: Route, token: Presented | None) -> Explanation:
    upstream = route.upstream
    out.add("upstream", f"{method} {upstream.url}{raw}")
    if token is not None:
        sub = token.claims.get("sub")
        out.add("header", f"X-User-Id: {sub}")
        for name, value in claim_headers(route, token.claims):
            out.add("header", f"{name}: {value}")
        absent = [rule.name for rule in route.headers if rule.value(token.claims) is None]
        if absent:
            out.add("header", f"absent (claim missing or unusable): {', '.join(absent)}")
    user = f"sub {_shown(token.claims.get('sub'))}, " if token is not None else "no user, "
    out.add("header", f"X-Gateway-Assertion: <redacted: aud {_shown(upstream.name)}, {user}bound to {method} {raw}>")
    out.add("header", "X-Request-Id, X-Forwarded-For, X-Forwarded-Proto, and the client's allow-listed headers")
    return out.done(None, f"forwarded to {upstream.name}; the upstream's answer is relayed")


async def inspect_token(policy: Policy, token: str, *, issuer_hint: str | None, settings: GatewaySettings) -> Presented:
    """Decode the token for display, pick its issuer, and verify it with that issuer where possible."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return Presented({}, None, False, "FAILED: not a decodable JWT")
    issuer = _pick_issuer(policy, header, claims, issuer_hint)
    unverified = "claims decoded WITHOUT verifying the signature (for this explanation only; the gateway verifies)"
    if issuer is None:
        return Presented(claims, None, None, f"{unverified}; issuer unknown")
    async with outbound_session(
        timeout_s=settings.jwks_timeout_s, connect_timeout_s=settings.upstream_connect_timeout_s
    ) as session:
        # The gateway's own factory: this issuer's secrets and key set, checked exactly as the gateway does.
        key_sets = key_sets_for((issuer,), settings, session)
        if issuer.jwks_url is not None and header.get("alg") != "HS256":
            key_set = key_sets[issuer.jwks_url]
            await key_set.refresh()
            if not key_set.ready:
                return Presented(claims, issuer.name, None, f"{unverified}; the JWKS of {issuer.name} is unreachable")
        verifier = build_verifier((issuer,), key_sets, settings, revocations=None, cache_size=0)
        try:
            await verifier.verify(token)
        except InvalidToken as exc:
            return Presented(claims, issuer.name, False, f"FAILED: issuer {issuer.name} refuses it ({exc})")
    return Presented(claims, issuer.name, True, f"ok: verified by issuer {issuer.name}")


def _pick_issuer(
    policy: Policy, header: Mapping[str, Any], claims: Mapping[str, Any], hint: str | None
) -> Issuer | None:
    """`--issuer` when given; else the one issuer the token's `iss` and algorithm fit, if exactly one does."""
    if hint is not None:
        return next((issuer for issuer in policy.issuers if issuer.name == hint), None)
    named = [issuer for issuer in policy.issuers if issuer.issuer is not None and issuer.issuer == claims.get("iss")]
    candidates = named or list(policy.issuers)
    if header.get("alg") == "HS256":
        candidates = [issuer for issuer in candidates if issuer.secrets]
    else:
        candidates = [issuer for issuer in candidates if issuer.jwks_url is not None]
    return candidates[0] if len(candidates) == 1 else None
