"""Per request: which route a target belongs to, and whether a verified token may use it.

The outcomes are domain errors, not HTTP answers (one table in the pipeline maps them to statuses):
`BadTarget` (400) and `NotRouted` (404) from `Router.locate`; `MethodNotAllowed` (405, `Allow`) from
`check_method`; `IssuerNotAccepted` (401 `invalid_token`) and `Forbidden` (403) from `authorise`.

Cost: a 50-route policy must cost what the 3-route default costs. Routes are grouped by segment count and
first literal segment, so a target is tried against the few templates that could match it (in file order),
and accepted targets are remembered in a bounded LRU, as `gateway.paths.checked_target` does today.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..paths import BadTarget, NotRouted, check_target
from ..tokens import InvalidToken
from .model import Policy, Route

TARGET_CACHE_SIZE = 1024


class MethodNotAllowed(Exception):
    """The target matched a route that does not list the method (→ 405 with `Allow`)."""

    def __init__(self, allow: tuple[str, ...]) -> None:
        super().__init__("method not allowed")
        self.allow = allow


class IssuerNotAccepted(InvalidToken):
    """A valid token, but from an issuer the route does not list (→ 401 invalid_token, like any token that
    cannot be used here)."""


class Forbidden(PermissionError):
    """A `match` or `require` rule does not hold for the token's claims (→ 403). The message names the rule
    (policy text, for logs), never a claim value."""


# The statuses these outcomes stand for (401: `invalid_token`; 405: with `Allow`), for the pipeline's one
# table of domain errors and for `policy explain`.
STATUS: Mapping[type[Exception], int] = {
    BadTarget: 400,
    NotRouted: 404,
    MethodNotAllowed: 405,
    IssuerNotAccepted: 401,
    Forbidden: 403,
}


@dataclass(frozen=True, slots=True)
class Located:
    """A checked target and the route it belongs to; `raw` is forwarded byte for byte."""

    raw: str
    path: str
    route: Route
    params: Mapping[str, str]


class Router:
    """The compiled routing table of one Policy (a reloaded policy gets a new Router, and a new cache)."""

    def __init__(self, policy: Policy, cache_size: int = TARGET_CACHE_SIZE) -> None:
        self.policy = policy
        by_shape: dict[tuple[int, str | None], list[Route]] = {}
        for route in policy.routes:  # file order is kept inside every group
            by_shape.setdefault(_shape(route), []).append(route)
        # A path with n segments whose first is `s` can match the routes keyed (n, s) and (n, None); merge the
        # two in file order once here rather than per request.
        self._any_first = {n: tuple(routes) for (n, first), routes in by_shape.items() if first is None}
        self._by_first = {
            (n, first): tuple(sorted((*routes, *self._any_first.get(n, ())), key=lambda r: r.index))
            for (n, first), routes in by_shape.items()
            if first is not None
        }
        self.locate = functools.lru_cache(maxsize=cache_size)(self._locate)

    def _locate(self, raw: str) -> Located:
        """Check `raw` strictly (raises BadTarget) and find its route (raises NotRouted)."""
        path = check_target(raw)
        count = path.count("/")
        end = path.find("/", 1)
        first = path[1:] if end < 0 else path[1:end]
        for route in self._by_first.get((count, first)) or self._any_first.get(count, ()):
            params = route.template.match(path)
            if params is not None:
                return Located(raw=raw, path=path, route=route, params=params)
        raise NotRouted(path)


def _shape(route: Route) -> tuple[int, str | None]:
    """(segment count as `path.count('/')` sees it, first segment if literal)."""
    segments = route.template.segments
    if not segments:
        return (1, "")
    first = segments[0]
    return (len(segments), first if isinstance(first, str) else None)


def check_method(route: Route, method: str) -> None:
    """Raise MethodNotAllowed unless the route lists `method`."""
    if method not in route.methods:
        raise MethodNotAllowed(tuple(sorted(route.methods)))


def authorise(route: Route, params: Mapping[str, str], issuer: str, claims: Mapping[str, Any]) -> None:
    """For an authenticated route and a token verified by `issuer`: raise IssuerNotAccepted or Forbidden
    unless the route accepts it. The issuer is checked first: a token the route would not accept learns
    nothing about the rules."""
    if issuer not in route.issuers:
        raise IssuerNotAccepted(f"{route.describe()} does not accept issuer {issuer!r}")
    for rule in route.rules:
        if not rule.holds(params, claims):
            raise Forbidden(f"{route.describe()}: {rule.describe()} does not hold")


def claim_headers(route: Route, claims: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The `headers:` of the route with the token's values; a header whose claim is missing is absent."""
    out = []
    for rule in route.headers:
        value = rule.value(claims)
        if value is not None:
            out.append((rule.name, value))
    return out
