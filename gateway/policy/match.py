"""Per request: which route a target belongs to, and whether a verified token may use it.

The outcomes are domain errors, not HTTP answers (gateway/errors.py, one table, maps them to answers):
`BadTarget` (400) and `NotRouted` (404) from `Router.locate`; `MethodNotAllowed` (405, `Allow`) from
`check_method`; `IssuerNotAccepted` (401 `invalid_token`) and `Forbidden` (403) from `authorise`.

Cost: a 50-route policy must cost what the 3-route default costs. Routes are grouped by segment count and
then by the literal at the position that tells them apart best, each group joined into one regex; a target
is matched against the one group that could hold its route (in file order), and accepted targets are
remembered in a bounded LRU, so the gateway's one `locate` per request is a dictionary hit for a target seen
before. Measured: bench/policy_micro.py and `make bench` (docs/performance.md).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..auth.verifier import InvalidToken
from .model import Policy, Route
from .paths import NotRouted, check_target
from .templates import pattern

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


@dataclass(frozen=True, slots=True)
class Located:
    """A checked target and the route it belongs to; `forwarded` (the canonical target: no bare `?`, no
    trailing slash) is signed and forwarded byte for byte. Shared through the cache by every request for the
    same target, so `params` is read-only."""

    forwarded: str
    path: str
    route: Route
    params: Mapping[str, str]


class Router:
    """The compiled routing table of one Policy (a reloaded policy gets a new Router, and a new cache)."""

    def __init__(self, policy: Policy, cache_size: int = TARGET_CACHE_SIZE) -> None:
        self.policy = policy
        by_count: dict[int, list[Route]] = {}
        for route in policy.routes:  # file order is kept inside every table
            by_count.setdefault(len(_literals(route)), []).append(route)
        self._tables = {count: _Table(routes) for count, routes in by_count.items()}
        self.locate = functools.lru_cache(maxsize=cache_size)(self._locate)

    def _locate(self, raw: str) -> Located:
        """Check `raw` strictly (raises BadTarget) and find its route (raises NotRouted)."""
        path, forwarded = check_target(raw)
        segments = path.split("/")  # "" first; "/" gives ["", ""]: one empty segment, like the template "/"
        table = self._tables.get(len(segments) - 1)
        group = None if table is None else table.by_literal.get(segments[table.position + 1], table.others)
        found = None if group is None else group.regex.fullmatch(path)
        if found is None or group is None:
            raise NotRouted(path)
        route, names = group.routes[found.lastgroup or ""]
        params = MappingProxyType({name: found[group_name] for name, group_name in names})
        return Located(forwarded=forwarded, path=path, route=route, params=params)


def _literals(route: Route) -> tuple[str | None, ...]:
    """The template's segments as the router keys them: the literal text, or None for a parameter."""
    return tuple(s if isinstance(s, str) else None for s in route.template.segments) or ("",)


class _Table:
    """The routes with one segment count, keyed by the literal at the one position that tells them apart
    best (the smallest largest group): paths are matched against that group only. A route with a parameter
    at that position belongs to every group, in file order."""

    def __init__(self, routes: list[Route]) -> None:
        literals = [_literals(route) for route in routes]
        self.position = min(range(len(literals[0])), key=lambda p: _largest_group(literals, p))
        at = [written[self.position] for written in literals]
        self.by_literal = {
            text: _Group([route for route, here in zip(routes, at, strict=True) if here in (text, None)])
            for text in {here for here in at if here is not None}
        }
        wild = [route for route, here in zip(routes, at, strict=True) if here is None]
        self.others = _Group(wild) if wild else None


def _largest_group(literals: list[tuple[str | None, ...]], position: int) -> int:
    at = [written[position] for written in literals]
    wild = at.count(None)
    return max([wild, *(at.count(text) + wild for text in set(at) - {None})])


class _Group:
    """Routes that could match paths of one shape, joined into one regex: alternatives are tried in file
    order inside the regex engine, so the first route that matches wins, in one call however many routes
    share the shape. Each alternative is the group `r<i>` (what `lastgroup` names after a match: it closes
    last) holding the route's parameters as `r<i>_<name>`."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes: dict[str, tuple[Route, tuple[tuple[str, str], ...]]] = {}
        alternatives = []
        for i, route in enumerate(routes):
            key = f"r{i}"
            self.routes[key] = (route, tuple((name, f"{key}_{name}") for name in route.template.params))
            alternatives.append(f"(?P<{key}>{pattern(route.template.segments, prefix=f'{key}_')})")
        self.regex = re.compile("|".join(alternatives))


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


def bound_claim_headers(route: Route, sent: Sequence[tuple[str, str]]) -> dict[str, str | None]:
    """What the assertion's `hdr` claim says of the route's `headers:`: each name in lower case, with the value
    sent (`sent` is claim_headers' answer), or None where the claim was missing and no header was sent — so an
    upstream can refuse a header added on the way as well as one changed."""
    bound: dict[str, str | None] = {rule.name.lower(): None for rule in route.headers}
    bound.update((name.lower(), value) for name, value in sent)
    return bound


def claim_headers(route: Route, claims: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The `headers:` of the route with the token's values; a header whose claim is missing is absent."""
    out = []
    for rule in route.headers:
        value = rule.value(claims)
        if value is not None:
            out.append((rule.name, value))
    return out
