"""The gateway assertion: proof for an upstream that a request passed this gateway's checks.

It names the upstream it was made for (`aud`: the upstream's name in the policy; the task service's is
`task-service`), so an assertion captured at one upstream is refused by another; it binds the user to the
exact method, request target and body bytes forwarded (`bdy`, their SHA-256), so it cannot be replayed for
another user, route, query or body; and it carries a unique id (`jti`) that the upstream accepts once within
its short lifetime. On a route whose policy copies claims into headers (`headers:`) it also carries those
headers' values (`hdr`), so a header changed or added on the way is refused too. An `auth: none` route's
assertion has no `sub`: the upstream still knows the request came through the gateway, and an upstream that
requires a user (the task service does) refuses it. The format is `taskgate_assertion.format`'s, shared with
every verifier; docs/contract.md describes it.

It is produced on every forwarded request, so the fixed JOSE header is encoded once, the claims object is
laid out once with every string value escaped by the json module's own C escaper, and the keyed HMAC state
is prepared once and copied per assertion — about 5× cheaper than `jwt.encode` (measured in bench/). The
output is an ordinary HS256 JWS that `jwt.decode` verifies; no value reaches the claims unescaped, so no path
byte can inject a claim.

The id (`jti`) comes from `ids.UniqueIds`: unique, not secret (a forged assertion fails its signature
whatever its id), and without a system call per assertion.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from json.encoder import encode_basestring

from taskgate_assertion.format import (
    BODY,
    CLAIM_HEADERS,
    EMPTY_BODY_DIGEST,
    ISSUER,
    LIFETIME_S,
    METHOD,
    REQUEST_ID,
    TARGET,
    TYPE,
    b64url,
    body_digest,
)

from .ids import UniqueIds

__all__ = ["ISSUER", "LIFETIME_S", "TYPE", "AssertionSigner"]

_HEADER = b64url(json.dumps({"alg": "HS256", "typ": TYPE}, separators=(",", ":")).encode())


def _claims_starts(audience: str) -> tuple[str, str]:
    """The claims' fixed opening for one audience: with a `sub` to follow, and without (an `auth: none` route)."""
    start = f'{{"iss":{encode_basestring(ISSUER)},"aud":{encode_basestring(audience)},'
    return f'{start}"sub":', start


def _claim_headers(headers: Mapping[str, str | None]) -> str:
    """The `hdr` claim and its trailing comma, every name and value escaped by the json module."""
    fields = ",".join(
        f"{encode_basestring(name)}:{'null' if value is None else encode_basestring(value)}"
        for name, value in headers.items()
    )
    return f'"{CLAIM_HEADERS}":{{{fields}}},'


class AssertionSigner:
    """Signs assertions with the current internal secret (the first of the configured list)."""

    def __init__(self, secret: bytes) -> None:
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)  # keyed once, copied per assertion
        self._starts: dict[str, tuple[str, str]] = {}  # audience → its fixed openings, laid out once per upstream
        self._ids = UniqueIds()

    def sign(
        self,
        *,
        audience: str,
        method: str,
        target: str,
        body: bytes,
        user_id: str | None,
        request_id: str,
        claim_headers: Mapping[str, str | None] | None = None,
    ) -> str:
        """`claim_headers` (a route with `headers:` in the policy: name in lower case → the value sent, or None
        where no header was sent) become the `hdr` claim, so an upstream can tell the gateway's values from any
        other; None (no `headers:`) leaves the claim out."""
        now = int(time.time())
        starts = self._starts.get(audience)
        if starts is None:
            starts = self._starts[audience] = _claims_starts(audience)
        start = starts[1] if user_id is None else f"{starts[0]}{encode_basestring(user_id)},"
        digest = body_digest(body) if body else EMPTY_BODY_DIGEST
        jti = self._ids.next()
        bound = "" if claim_headers is None else _claim_headers(claim_headers)
        claims = (
            f"{start}"
            f'"{METHOD}":{encode_basestring(method)},"{TARGET}":{encode_basestring(target)},"{BODY}":"{digest}",'
            f'{bound}"iat":{now},"exp":{now + LIFETIME_S},"jti":"{jti}",'
            f'"{REQUEST_ID}":{encode_basestring(request_id)}}}'
        )
        signing_input = _HEADER + b"." + b64url(claims.encode())
        mac = self._mac.copy()
        mac.update(signing_input)
        return (signing_input + b"." + b64url(mac.digest())).decode()
