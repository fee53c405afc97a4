"""Strict parsing of the raw request target.

A route's rules compare path parameters with the token's claims (the task API: the path's user id with `sub`),
so the gateway must decide on the exact bytes the upstream will route on. Rather than normalising (and risking
a disagreement with the upstream's own decoding), anything that a server could read in more than one way is
refused with 400.

Two spellings that real clients produce and that can only mean one thing are accepted and made canonical:
an empty query (`…/tasks?`, what `${url}?${new URLSearchParams({})}` gives) is no query, and a single trailing
slash (`…/tasks/`, as axios `baseURL` joins and Django-style clients write) is the route without it. The
canonical target is then what the route and its parameters are read from (policy/match.py), what is signed,
and what is forwarded byte for byte, so the gateway and the upstream still decide on the same bytes.
"""

from __future__ import annotations

import re
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

# The user-id grammar: a token's `sub`, and a `{name}` path parameter (policy/templates.py).
USER_ID_PATTERN = r"[A-Za-z0-9_-]{1,128}"


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
