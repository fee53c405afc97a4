"""The policy file (`GATEWAY_POLICY_FILE`, YAML): read, validated in full, turned into a Policy — or refused.

Validation happens once, at start (and by `taskgate policy check`), so every mistake an operator can make
stops the gateway with one line naming the file, the line, the route and the problem, instead of surfacing
as a wrong answer to some request later. Unknown keys are errors at every level: a misspelt `match` that
were silently ignored would open a route to every user.

The YAML is composed into nodes (PyYAML's SafeLoader, no object construction) and walked by hand, so every
value keeps the line it was written on. Anchors and aliases are refused (they make one text mean two places
and let a small file expand into a huge one); so are duplicate keys, which YAML loaders silently collapse.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import yaml

from ..settings import ConfigError, env_secret_list
from .claims import ClaimRef, ClaimRefError, HeaderRule, MatchRule, RequireRule
from .errors import PolicyError
from .headers import FORWARDED_REQUEST_HEADERS, HOP_BY_HOP
from .model import Issuer, Policy, Route, Upstream
from .templates import TemplateError, parse_template

MAX_POLICY_BYTES = 1024 * 1024
# HEAD is not offered (the upstream client reads a body after every answer); OPTIONS is the gateway's own
# (CORS preflight, never forwarded); CONNECT and TRACE have no place behind an API gateway.
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Upstream and issuer names: an upstream's name is its assertions' audience, so plain text only.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")  # RFC 9110 token
# Headers a claim may not set: what the gateway itself sets or frames, what carries credentials, and the
# client headers the gateway forwards (so a claim header is never mixed with a client's value).
_GATEWAY_HEADERS = frozenset(
    {
        "x-user-id",
        "x-gateway-assertion",
        "x-request-id",
        "forwarded",
        "host",
        "authorization",
        "cookie",
        "expect",
        "upgrade",
        "via",
    }
)
_RESERVED_HEADERS = _GATEWAY_HEADERS | HOP_BY_HOP | {name.lower() for name in FORWARDED_REQUEST_HEADERS}
_RESERVED_HEADER_PREFIXES = ("x-forwarded-", "content-", "proxy-")

_TOP_KEYS = ("upstreams", "issuers", "routes")
_UPSTREAM_KEYS = ("url",)
_ISSUER_KEYS = ("jwks_url", "issuer", "audience", "secret_env")
_ROUTE_KEYS = ("path", "methods", "upstream", "issuers", "match", "require", "headers", "auth")
_AUTH_VALUES = ("bearer", "none")
_STR, _INT, _BOOL, _NULL, _FLOAT = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "bool", "null", "float"))
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


@dataclass(frozen=True, slots=True)
class _Node:
    """A YAML value with the 1-based line it was written on (a mapping entry: its key's line). `value` is a
    str, int, float, bool, None, list[_Node] or dict[str, _Node]."""

    value: Any
    line: int


def load_policy(
    path: Path,
    *,
    environ: Mapping[str, str],
    fallback_issuer: Issuer | None,
    reserved_secrets: tuple[bytes, ...],
) -> Policy:
    """Read and validate a policy file; raise PolicyError (one line) on any problem.

    `fallback_issuer` is used when the file has no `issuers:` (the default issuer from the settings);
    `reserved_secrets` (the internal secrets) may not be any issuer's secret; `environ` holds `secret_env`s.
    """
    source = str(path)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(source, None, None, f"cannot read the policy file ({exc.strerror})") from None
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(source, None, None, f"the policy file is larger than {MAX_POLICY_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(source, None, None, "the policy file is not UTF-8 text") from None
    return parse_policy(
        text, source=source, environ=environ, fallback_issuer=fallback_issuer, reserved_secrets=reserved_secrets
    )


def parse_policy(
    text: str,
    *,
    source: str,
    environ: Mapping[str, str],
    fallback_issuer: Issuer | None,
    reserved_secrets: tuple[bytes, ...],
) -> Policy:
    """Validate policy text (`source` names it in errors); see load_policy."""
    return _Builder(source, environ, fallback_issuer, reserved_secrets).policy(_compose(text, source))


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Refused(Exception):
    def __init__(self, mark: yaml.Mark, problem: str) -> None:
        super().__init__(problem)
        self.line = mark.line + 1


class _Loader(yaml.SafeLoader):
    """SafeLoader's composer, refusing anchors and aliases where they are written."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(event.start_mark, "anchors and aliases (& and *) are not supported")
        return super().compose_node(parent, index)


def _compose(text: str, source: str) -> _Node:
    try:
        root = yaml.compose(text, Loader=_Loader)
        if root is None:
            raise PolicyError(source, None, None, "the policy file is empty")
        return _Node(_convert(root, source), root.start_mark.line + 1)
    except RecursionError:
        raise PolicyError(source, None, None, "the policy file is nested too deeply") from None
    except _Refused as exc:
        raise PolicyError(source, exc.line, None, str(exc)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = _one_line(f"{exc.context or ''} {exc.problem or ''}")
        raise PolicyError(source, mark.line + 1 if mark else None, None, f"not valid YAML: {problem}") from None
    except yaml.YAMLError:
        raise PolicyError(source, None, None, "not valid YAML") from None


def _convert(node: yaml.Node, source: str) -> Any:
    """Plain values from composed nodes, each entry keeping its line; refuses tags beyond plain data."""
    if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
        entries: dict[str, _Node] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                raise PolicyError(source, key_line, None, "every key is a plain name")
            if key_node.value in entries:
                raise PolicyError(source, key_line, None, f"key {key_node.value!r} appears twice")
            entries[key_node.value] = _Node(_convert(value_node, source), key_line)
        return entries
    if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
        return [_Node(_convert(item, source), item.start_mark.line + 1) for item in node.value]
    if isinstance(node, yaml.ScalarNode) and node.tag in (_STR, _INT, _BOOL, _NULL, _FLOAT):
        return node.value if node.tag == _STR else yaml.SafeLoader("").construct_object(node)
    raise PolicyError(source, node.start_mark.line + 1, None, f"unsupported YAML value (tag {node.tag})")


class _Builder:
    """Turns the node tree into a Policy, failing at the first problem with its place in the file."""

    def __init__(
        self,
        source: str,
        environ: Mapping[str, str],
        fallback_issuer: Issuer | None,
        reserved_secrets: tuple[bytes, ...],
    ) -> None:
        self.source = source
        self.environ = environ
        self.fallback_issuer = fallback_issuer
        self.reserved_secrets = frozenset(reserved_secrets)

    def fail(self, line: int | None, where: str | None, problem: str) -> NoReturn:
        raise PolicyError(self.source, line, where, problem)

    # generic shapes

    def mapping(
        self, node: _Node, where: str | None, keys: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, _Node]:
        if not isinstance(node.value, dict):
            self.fail(node.line, where, "expected a mapping of keys to values")
        for key, entry in node.value.items():
            if key not in keys:
                self.fail(entry.line, where, f"unknown key {key!r} (expected one of: {', '.join(keys)})")
        for key in required:
            if key not in node.value:
                self.fail(node.line, where, f"{key!r} is required")
        entries: dict[str, _Node] = node.value
        return entries

    def named_entries(self, node: _Node, where: str) -> dict[str, _Node]:
        """`upstreams:` / `issuers:`: a non-empty mapping of names."""
        if not isinstance(node.value, dict) or not node.value:
            self.fail(node.line, where, "expected a mapping of names to definitions")
        for name, entry in node.value.items():
            if not _NAME.fullmatch(name):
                self.fail(entry.line, where, f"{name!r} is not a valid name (letters, digits, '.', '_', '-')")
        entries: dict[str, _Node] = node.value
        return entries

    def text(self, node: _Node, where: str, what: str) -> str:
        if not isinstance(node.value, str) or not node.value.strip():
            self.fail(node.line, where, f"{what} must be non-empty text")
        value: str = node.value
        return value

    def texts(self, node: _Node, where: str, what: str) -> list[_Node]:
        """A list of text values; a single value stands for a list of one."""
        items = node.value if isinstance(node.value, list) else [node]
        if not items:
            self.fail(node.line, where, f"{what} must not be an empty list")
        for item in items:
            self.text(item, where, f"each of {what}")
        return items

    def http_url(self, node: _Node, where: str, what: str, *, origin_only: bool) -> str:
        url = self.text(node, where, what)
        if not url.isprintable() or " " in url:
            self.fail(node.line, where, f"{what} is not a valid URL")
        try:
            parts = urlsplit(url)
            _ = parts.port  # raises ValueError for a port that is not a number in range
        except ValueError:
            self.fail(node.line, where, f"{what} is not a valid URL")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.fail(node.line, where, f"{what} must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None or parts.fragment:
            self.fail(node.line, where, f"{what} must not carry credentials or a fragment")
        if origin_only and (parts.path not in ("", "/") or parts.query):
            # The target is forwarded byte for byte; a base path would silently be ignored.
            self.fail(node.line, where, f"{what} is scheme://host[:port] only (no path or query)")
        return url.rstrip("/") if origin_only else url

    # the document

    def policy(self, root: _Node) -> Policy:
        top = self.mapping(root, None, _TOP_KEYS, required=("upstreams", "routes"))
        upstreams = {
            name: self.upstream(name, entry)
            for name, entry in self.named_entries(top["upstreams"], "upstreams").items()
        }
        if "issuers" in top:
            defined = self.named_entries(top["issuers"], "issuers")
            issuers = [self.issuer(name, entry) for name, entry in defined.items()]
            self.check_issuers_distinct(issuers, top["issuers"])
        elif self.fallback_issuer is not None:
            issuers = [self.fallback_issuer]
        else:
            self.fail(root.line, None, "no 'issuers' in the file and no default issuer (GATEWAY_JWT_SECRET or JWKS)")
        routes_node = top["routes"]
        if not isinstance(routes_node.value, list) or not routes_node.value:
            self.fail(routes_node.line, "routes", "expected a non-empty list of routes")
        issuer_names = tuple(issuer.name for issuer in issuers)
        routes: list[Route] = []
        for index, entry in enumerate(routes_node.value, start=1):
            route = self.route(index, entry, upstreams, issuer_names)
            for earlier in routes:
                if earlier.template.covers(route.template):
                    self.fail(
                        entry.line,
                        route.describe(),
                        f"can never match: {earlier.describe()} comes first and matches every path it does "
                        "(first match wins; list the more specific route first, or merge their methods)",
                    )
            routes.append(route)
        return Policy(
            routes=tuple(routes), upstreams=tuple(upstreams.values()), issuers=tuple(issuers), source=self.source
        )

    def upstream(self, name: str, node: _Node) -> Upstream:
        where = f"upstream {name!r}"
        entries = self.mapping(node, where, _UPSTREAM_KEYS, required=_UPSTREAM_KEYS)
        return Upstream(name=name, url=self.http_url(entries["url"], where, "url", origin_only=True))

    def issuer(self, name: str, node: _Node) -> Issuer:
        where = f"issuer {name!r}"
        entries = self.mapping(node, where, _ISSUER_KEYS)
        if "jwks_url" not in entries and "secret_env" not in entries:
            self.fail(node.line, where, "set 'jwks_url', 'secret_env' or both")
        jwks_url = None
        if "jwks_url" in entries:
            jwks_url = self.http_url(entries["jwks_url"], where, "jwks_url", origin_only=False)
        issuer = self.text(entries["issuer"], where, "issuer") if "issuer" in entries else None
        audience: tuple[str, ...] = ()
        if "audience" in entries:
            audience = tuple(item.value for item in self.texts(entries["audience"], where, "audience"))
        secret_env: str | None = None
        secrets: tuple[bytes, ...] = ()
        if "secret_env" in entries:
            secret_env, secrets = self.secrets(entries["secret_env"], where)
        return Issuer(
            name=name, jwks_url=jwks_url, issuer=issuer, audience=audience, secret_env=secret_env, secrets=secrets
        )

    def secrets(self, node: _Node, where: str) -> tuple[str, tuple[bytes, ...]]:
        """`secret_env: NAME`: HS256 secrets from NAME or NAME_FILE, resolved exactly as the gateway's own."""
        name = self.text(node, where, "secret_env")
        if not _ENV_NAME.fullmatch(name):
            self.fail(node.line, where, f"secret_env {name!r} is not an environment variable name")
        try:
            secrets = env_secret_list(name, self.environ)
        except ConfigError as exc:
            self.fail(node.line, where, f"secret_env: {exc}")
        if not secrets:
            self.fail(node.line, where, f"secret_env: neither {name} nor {name}_FILE is set")
        if self.reserved_secrets.intersection(secrets):
            self.fail(node.line, where, f"secret_env: {name} must differ from GATEWAY_INTERNAL_SECRET")
        return name, secrets

    def check_issuers_distinct(self, issuers: list[Issuer], node: _Node) -> None:
        """A route's `issuers:` list means something only if a token can come from one issuer alone."""
        for later_index, later in enumerate(issuers):
            for earlier in issuers[:later_index]:
                line = node.value[later.name].line
                if set(earlier.secrets) & set(later.secrets):
                    self.fail(line, f"issuer {later.name!r}", f"shares a secret with issuer {earlier.name!r}")
                if later.jwks_url is not None and later.jwks_url == earlier.jwks_url and later.issuer == earlier.issuer:
                    self.fail(
                        line,
                        f"issuer {later.name!r}",
                        f"has the same jwks_url as issuer {earlier.name!r}: give each a distinct 'issuer'",
                    )

    # routes

    def route(self, index: int, node: _Node, upstreams: dict[str, Upstream], issuer_names: tuple[str, ...]) -> Route:
        where = f"route {index}"
        written = node.value.get("path") if isinstance(node.value, dict) else None
        if written is not None and isinstance(written.value, str):
            where = f"{where} ({written.value})"  # every message about this route names its path, when it has one
        entries = self.mapping(node, where, _ROUTE_KEYS, required=("path", "methods", "upstream"))
        path = self.text(entries["path"], where, "path")
        try:
            template = parse_template(path)
        except TemplateError as exc:
            self.fail(entries["path"].line, where, f"path: {exc}")
        upstream_node = entries["upstream"]
        upstream_name = self.text(upstream_node, where, "upstream")
        if upstream_name not in upstreams:
            self.fail(upstream_node.line, where, f"upstream {upstream_name!r} is not defined under 'upstreams'")
        methods = self.methods(entries["methods"], where)
        auth = self.text(entries["auth"], where, "auth") if "auth" in entries else "bearer"
        if auth not in _AUTH_VALUES:
            self.fail(entries["auth"].line, where, f"auth is 'bearer' (the default) or 'none', not {auth!r}")
        if auth == "none":
            for key in ("issuers", "match", "require", "headers"):
                if key in entries:
                    self.fail(entries[key].line, where, f"'{key}' needs a token, and this route has auth: none")
            return Route(index, template, methods, upstreams[upstream_name], (), auth_required=False, line=node.line)
        issuers = issuer_names
        if "issuers" in entries:
            issuers = self.route_issuers(entries["issuers"], where, issuer_names)
        return Route(
            index=index,
            template=template,
            methods=methods,
            upstream=upstreams[upstream_name],
            issuers=issuers,
            match=self.match(entries["match"], where, template.params) if "match" in entries else (),
            require=self.require(entries["require"], where) if "require" in entries else (),
            headers=self.headers(entries["headers"], where) if "headers" in entries else (),
            line=node.line,
        )

    def methods(self, node: _Node, where: str) -> frozenset[str]:
        seen: set[str] = set()
        for item in self.texts(node, where, "methods"):
            method = item.value
            if method not in METHODS:
                hint = f" (write it in upper case: {method.upper()})" if method.upper() in METHODS else ""
                self.fail(item.line, where, f"method {method!r} is not one of {', '.join(METHODS)}{hint}")
            if method in seen:
                self.fail(item.line, where, f"method {method} is listed twice")
            seen.add(method)
        return frozenset(seen)

    def route_issuers(self, node: _Node, where: str, known: tuple[str, ...]) -> tuple[str, ...]:
        names: list[str] = []
        for item in self.texts(node, where, "issuers"):
            if item.value not in known:
                self.fail(item.line, where, f"issuer {item.value!r} is not defined (known: {', '.join(known)})")
            if item.value in names:
                self.fail(item.line, where, f"issuer {item.value!r} is listed twice")
            names.append(item.value)
        return tuple(names)

    def claim(self, node: _Node, where: str, what: str) -> ClaimRef:
        try:
            return ClaimRef.parse(self.text(node, where, what))
        except ClaimRefError as exc:
            self.fail(node.line, where, f"{what}: {exc}")

    def match(self, node: _Node, where: str, params: tuple[str, ...]) -> tuple[MatchRule, ...]:
        if not isinstance(node.value, dict) or not node.value:
            self.fail(node.line, where, "match: expected a mapping of path parameters to claims")
        rules = []
        for param, entry in node.value.items():
            if param not in params:
                have = ", ".join(params) or "none"
                self.fail(entry.line, where, f"match: the path has no parameter {param!r} (it has: {have})")
            rules.append(MatchRule(param, self.claim(entry, where, f"match {param}")))
        return tuple(rules)

    def require(self, node: _Node, where: str) -> tuple[RequireRule, ...]:
        if not isinstance(node.value, dict) or not node.value:
            self.fail(node.line, where, "require: expected a mapping of claims to allowed values")
        rules = []
        for claim_text, entry in node.value.items():
            claim = self.claim(_Node(claim_text, entry.line), where, "require")
            items = entry.value if isinstance(entry.value, list) else [entry]
            if not items:
                self.fail(entry.line, where, f"require {claim_text}: list at least one value")
            values = set()
            for item in items:
                value = item.value
                # Only text and integers: what a claim compares as (claims.py); a boolean, null or fraction
                # could never be met, so it is a mistake to say so here rather than a 403 for everyone.
                if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
                    self.fail(item.line, where, f"require {claim_text}: values are non-empty text or integers")
                values.add(str(value))
            rules.append(RequireRule(claim, frozenset(values)))
        return tuple(rules)

    def headers(self, node: _Node, where: str) -> tuple[HeaderRule, ...]:
        if not isinstance(node.value, dict) or not node.value:
            self.fail(node.line, where, "headers: expected a mapping of header names to claims")
        rules: list[HeaderRule] = []
        for name, entry in node.value.items():
            lowered = name.lower()
            if not _HEADER_NAME.fullmatch(name):
                self.fail(entry.line, where, f"headers: {name!r} is not a valid header name")
            if lowered in _RESERVED_HEADERS or lowered.startswith(_RESERVED_HEADER_PREFIXES):
                self.fail(entry.line, where, f"headers: {name} is set or forwarded by the gateway itself")
            if any(rule.name.lower() == lowered for rule in rules):
                self.fail(entry.line, where, f"headers: {name} is listed twice")
            rules.append(HeaderRule(name, self.claim(entry, where, f"headers {name}")))
        return tuple(rules)
