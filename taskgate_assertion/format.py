"""The assertion's wire format: header, claim names, lifetimes, the body digest and the user-id grammar.

Both sides import these: the gateway's signer (gateway/policy/assertion.py) and every upstream's verifier
(`taskgate_assertion.verify`), so the format cannot drift between them. Claim names are short because the
assertion rides on every forwarded request.
"""

from __future__ import annotations

import binascii
import hashlib
import re

ASSERTION_HEADER = "x-gateway-assertion"
USER_HEADER = "x-user-id"
TYPE = "tg-assertion+jwt"
ISSUER = "taskgate-gateway"

# Claim names (besides the registered iss, aud, sub, iat, exp, jti).
METHOD = "mth"  # the request method, upper case
TARGET = "tgt"  # the request target forwarded: raw path, plus '?' and the raw query if any
BODY = "bdy"  # base64url (unpadded) SHA-256 of the exact body bytes forwarded; of b"" for a bodiless request
REQUEST_ID = "rid"  # the gateway's X-Request-Id, for correlating logs
# The headers the gateway copied from the token's claims (a route's `headers:` in the policy): an object of each
# such header's name, in lower case, to the value sent, or null where the claim was missing and no header was sent.
# Present only on a route with `headers:`; it binds those headers into the signature like `bdy` binds the body.
CLAIM_HEADERS = "hdr"

# The gateway's assertions live this long: a forwarded request reaches its upstream in milliseconds; the rest
# is room for a slow upstream connection. The verifier accepts up to MAX_LIFETIME_S so that a change of the
# gateway's lifetime can roll out without a flag day, and tolerates CLOCK_SKEW_S between the two clocks.
LIFETIME_S = 10
MAX_LIFETIME_S = 30
CLOCK_SKEW_S = 5

# The gateway only routes user ids of this form (docs/contract.md); anything else cannot be a real caller.
USER_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")

_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64url(data: bytes) -> bytes:
    """Unpadded base64url (RFC 7515 §2), the JWS encoding of every segment and of the body digest."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


def body_digest(body: bytes) -> str:
    """The `bdy` claim for these body bytes (about 1 µs for a small JSON body)."""
    return b64url(hashlib.sha256(body).digest()).decode("ascii")


EMPTY_BODY_DIGEST = body_digest(b"")
