"""The bearer credential of a request: taken from `Authorization` only, whatever its shape (RFC 6750 §2.1).

Tokens in a query string or a cookie are never read: they would leak into logs and let a page's ambient
credentials act for it.
"""

from __future__ import annotations


class AuthorizationMalformed(ValueError):
    """The request's Authorization is ambiguous as HTTP: more than one header (→ 400 invalid_request)."""


def bearer_token(values: list[str]) -> str | None:
    """Extract the bearer value from all Authorization header values, whatever its shape.

    None means no bearer credentials were offered: no header, another scheme, or `Bearer` with nothing after it
    (→ plain 401 challenge). Any value that is there is returned as it is, even `null` or two words, and gets
    the verifier's verdict (→ 401 invalid_token): RFC 6750 §3.1 makes a presented token that cannot be used
    `invalid_token`, and clients send their user to sign in on a 401, not on a 400. Only two headers are
    refused here: which one would be the credential is ambiguous.
    """
    if not values:
        return None
    if len(values) > 1:
        raise AuthorizationMalformed("more than one Authorization header")
    scheme, _, rest = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return rest.strip(" \t") or None


class BearerMissing(LookupError):
    """No bearer credentials were offered on a route that needs them (→ 401 with a plain challenge)."""


def required_bearer(values: list[str]) -> str:
    """The bearer value of a request to an authenticated route: raises BearerMissing or AuthorizationMalformed."""
    token = bearer_token(values)
    if token is None:
        raise BearerMissing("bearer token required")
    return token
