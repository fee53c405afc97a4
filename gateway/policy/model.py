"""The policy as frozen values: built once at start (from the file or the default), shared by every request.

Names cross-reference by value: a Route holds its Upstream itself and the names of the issuers it accepts,
so a request needs no lookups. Secrets are held as resolved bytes and never shown by `repr`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .claims import HeaderRule, MatchRule, RequireRule, Rule
from .templates import Template


@dataclass(frozen=True, slots=True)
class Upstream:
    """A backend. Its name is the audience of the gateway assertions made for it."""

    name: str
    url: str


@dataclass(frozen=True, slots=True)
class Issuer:
    """Where tokens come from: a JWKS URL, HS256 secrets (from `secret_env`), or both; `issuer` and
    `audience`, when set, are enforced on the token's `iss` and `aud`."""

    name: str
    jwks_url: str | None = None
    issuer: str | None = None
    audience: tuple[str, ...] = ()
    secret_env: str | None = None
    secrets: tuple[bytes, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of `routes:`. `issuers` is resolved (every issuer when the file lists none); for an
    `auth: none` route `auth_required` is False and every rule tuple is empty."""

    index: int  # 1-based position in the file: first match wins, and errors name it
    template: Template
    methods: frozenset[str]
    upstream: Upstream
    issuers: tuple[str, ...]
    match: tuple[MatchRule, ...] = ()
    require: tuple[RequireRule, ...] = ()
    headers: tuple[HeaderRule, ...] = ()
    auth_required: bool = True
    line: int | None = field(default=None, compare=False)
    # The claim rules in the order they are checked: every `match`, then every `require` (joined once here,
    # not on every request).
    rules: tuple[Rule, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", (*self.match, *self.require))

    def describe(self) -> str:
        """`route 3 (/orgs/{org_id}/notes)`: how errors, logs and `policy explain` name a route."""
        return f"route {self.index} ({self.template.text})"


@dataclass(frozen=True, slots=True)
class Policy:
    """Routes in file order (first match wins), and the upstreams and issuers they use."""

    routes: tuple[Route, ...]
    upstreams: tuple[Upstream, ...]
    issuers: tuple[Issuer, ...]
    source: str = field(default="built-in default policy", compare=False)
