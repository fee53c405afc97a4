"""Strict parsing of the raw request target.

The ownership check compares the path's user id with the token's `sub`, so the gateway must decide on the
exact bytes the upstream will route on. Rather than normalising (and risking a disagreement with the
upstream's own decoding), anything that a server could read in more than one way is refused with 400.

Two spellings that real clients produce and that can only mean one thing are accepted and made canonical:
an empty query (`…/tasks?`, what `${url}?${new URLSearchParams({})}` gives) is no query, and a single trailing
slash (`…/tasks/`, as axios `baseURL` joins and Django-style clients write) is the route without it. The
canonical target is then what the route and owner are read from, what is signed, and what is forwarded byte
for byte, so the gateway and the upstream still decide on the same bytes.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

MAX_TARGET_LENGTH = 2048

# RFC 3986 pchar without ';' (matrix parameters) and without '%' (no legitimate route needs escapes, and
# refusing them removes every double-decoding and encoded-separator trick at once).
_PATH_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@/")
# Query: pchar plus '/', '?' and well-formed percent-escapes; never '#', controls, spaces or non-ASCII.
_QUERY_CHARS = _PATH_CHARS | frozenset("?%;")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")

# Bearer tokens belong in Authorization only; in a query string they end up in access logs and browser history.
_CREDENTIAL_PARAMS = frozenset(
    {"access_token", "id_token", "refresh_token", "token", "jwt", "bearer", "auth", "authorization", "api_key"}
)
_JWS_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.")

USER_ID_PATTERN = r"[A-Za-z0-9_-]{1,128}"
_ROUTE = re.compile(rf"/api/({USER_ID_PATTERN})/tasks(?:/([1-9][0-9]{{0,17}})(/complete)?)?")

_METHODS_COLLECTION = frozenset({"GET", "POST"})
_METHODS_ITEM = frozenset({"GET", "PUT", "PATCH", "DELETE"})
_METHODS_COMPLETE = frozenset({"PATCH"})
API_METHODS = _METHODS_COLLECTION | _METHODS_ITEM
# Route templates: the only path labels metrics and logs ever carry.
ROUTE_COLLECTION = "/api/{user_id}/tasks"
ROUTE_ITEM = "/api/{user_id}/tasks/{id}"
ROUTE_COMPLETE = "/api/{user_id}/tasks/{id}/complete"
ROUTE_OTHER = "other"


def _carries_credential(query: str) -> bool:
    """A token-named parameter or a JWS-looking value: refused, so it is never forwarded or logged upstream."""
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if unquote_plus(name).strip().lower() in _CREDENTIAL_PARAMS or _JWS_LIKE.search(unquote_plus(value)):
            return True
    return False


class BadTarget(ValueError):
    """The request target is malformed or ambiguous (→ 400)."""


class NotRouted(LookupError):
    """A well-formed target outside the forwarded API (→ 404)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked request target in canonical form.

    `forwarded` (path, plus `?` and the query when it is not empty) is what is signed as `tgt` and sent upstream
    byte for byte; `path` is its path and `user_id` what ownership is checked on — both read from it alone.
    """

    forwarded: str
    path: str
    user_id: str
    methods: frozenset[str]
    route: str


def check_target(raw: str) -> tuple[str, str]:
    """The strict checks every route relies on (raises BadTarget).

    Returns the canonical path and the canonical target (that path, plus `?` and the query when it is not
    empty): what routes are matched on, and what is signed and forwarded."""
    if not raw or len(raw) > MAX_TARGET_LENGTH:
        raise BadTarget("request target is empty or too long")
    if raw[0] != "/" or raw.startswith("//"):
        raise BadTarget("request target must be an origin-form path")
    path, _, query = raw.partition("?")
    if not _PATH_CHARS.issuperset(path):
        raise BadTarget("request path contains a character that is not allowed")
    # An empty query ("…?") is dropped rather than forwarded: HTTP servers drop the bare '?' too, so a
    # forwarded '…?' would be signed for a target the upstream never sees.
    if query and (not _QUERY_CHARS.issuperset(query) or _BAD_ESCAPE.search(query)):
        raise BadTarget("query string is malformed")
    if query and _carries_credential(query):
        raise BadTarget("credentials are not accepted in the query string")
    if path != "/":
        # One trailing slash names the route without it; a second one ("tasks//") is still an empty segment.
        if path.endswith("/"):
            path = path[:-1]
        for segment in path.split("/")[1:]:
            if segment in ("", ".", ".."):
                raise BadTarget("request path contains an empty or dot segment")
    return path, f"{path}?{query}" if query else path


def parse_target(raw: str) -> Target:
    """Check a raw request target and match it against the API routes."""
    path, forwarded = check_target(raw)
    match = _ROUTE.fullmatch(path)
    if match is None:
        raise NotRouted(path)
    if match.group(3):
        methods, route = _METHODS_COMPLETE, ROUTE_COMPLETE
    elif match.group(2):
        methods, route = _METHODS_ITEM, ROUTE_ITEM
    else:
        methods, route = _METHODS_COLLECTION, ROUTE_COLLECTION
    return Target(forwarded=forwarded, path=path, user_id=match.group(1), methods=methods, route=route)


# Clients repeat their targets (a user's list, a task they just touched), so accepted targets are remembered;
# a refused one raises and is never cached. Bounded: at most 1,024 × MAX_TARGET_LENGTH characters.
checked_target = functools.lru_cache(maxsize=1024)(parse_target)


def route_label(raw: str) -> str:
    """The route template of a target, for metrics and logs, where a refused target is simply `other`."""
    try:
        return checked_target(raw).route
    except (BadTarget, NotRouted):
        return ROUTE_OTHER
