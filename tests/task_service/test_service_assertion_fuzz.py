"""Whatever arrives as an assertion, the verifier answers with a user id or a rejection, never a crash."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from taskgate_assertion.verify import AssertionRejected, AssertionVerifier
from tests.task_service.signer import INTERNAL_SECRET, claims_for

VERIFIER = AssertionVerifier([INTERNAL_SECRET.encode()], "task-service")
TARGET = b"/api/alice/tasks"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


def _signed(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """An HS256 JWS over any JSON at all (pyjwt's encoder refuses some of it, e.g. a non-string iss)."""

    def b64(part: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")

    signing_input = b64(header) + b"." + b64(claims)
    signature = hmac.new(INTERNAL_SECRET.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


def _outcome(token: str, user_header: str | None = None) -> str | None:
    try:
        return VERIFIER.verify(token, "GET", TARGET, b"", user_header).user
    except AssertionRejected:
        return None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_is_rejected(token: str) -> None:
    assert _outcome(token) is None


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["iss", "aud", "sub", "mth", "tgt", "bdy", "iat", "exp", "jti"]), json_values)
def test_any_changed_claim_is_rejected_or_still_exact(name: str, value: Any) -> None:
    claims = claims_for("GET", TARGET.decode(), "alice", **{name: value})
    token = _signed({"alg": "HS256", "typ": "tg-assertion+jwt"}, claims)
    outcome = _outcome(token)
    # Accepted only when the change left every binding claim exactly as the contract requires (a new
    # iat/exp may still be a valid time window), and then the acting user is the claimed sub. Another valid
    # user id as sub is accepted here: what binds it is the path, compared by acting_user (a 403).
    if outcome is not None:
        exact = claims_for("GET", TARGET.decode(), "alice")
        assert all(claims[k] == exact[k] for k in ("iss", "aud", "mth", "tgt", "bdy"))
        assert outcome == claims["sub"]
        assert name == "sub" or outcome == "alice"


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_arbitrary_headers_are_rejected(header: dict[str, Any]) -> None:
    token = _signed(header, claims_for("GET", TARGET.decode(), "alice"))
    accepted = _outcome(token) is not None
    assert accepted == (header.get("typ") == "tg-assertion+jwt" and header.get("alg") == "HS256")
