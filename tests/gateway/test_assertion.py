"""The gateway assertion is built by hand for speed; pyjwt must read back exactly the claims that went in,
and the shared verifier (taskgate_assertion) must accept exactly what the gateway signs."""

from __future__ import annotations

import base64
import hashlib
import time

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.policy.assertion import ISSUER, LIFETIME_S, TYPE, AssertionSigner
from taskgate_assertion.verify import AssertionRejected, AssertionVerifier

SECRET = b"s" * 32
AUDIENCE = "task-service"


def _sha256_b64url(body: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()


@given(
    method=st.text(max_size=10),
    target=st.text(max_size=200),
    body=st.binary(max_size=300),
    user_id=st.text(max_size=40),
    request_id=st.text(max_size=40),
)
def test_any_value_round_trips_as_one_claim(
    method: str, target: str, body: bytes, user_id: str, request_id: str
) -> None:
    """Quotes, backslashes, controls and non-ASCII stay inside their own claim: nothing can inject another."""
    signed = AssertionSigner(SECRET).sign(
        audience=AUDIENCE, method=method, target=target, body=body, user_id=user_id, request_id=request_id
    )
    claims = jwt.decode(signed, SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)
    assert {k: claims[k] for k in ("sub", "mth", "tgt", "bdy", "rid")} == {
        "sub": user_id,
        "mth": method,
        "tgt": target,
        "bdy": _sha256_b64url(body),
        "rid": request_id,
    }
    assert set(claims) == {"iss", "aud", "sub", "mth", "tgt", "bdy", "iat", "exp", "jti", "rid"}
    assert claims["exp"] - claims["iat"] == LIFETIME_S and abs(claims["iat"] - time.time()) < 5
    prefix, _, count = claims["jti"].partition(".")
    assert len(base64.urlsafe_b64decode(prefix)) == 12 and int(count, 16) >= 1


def test_header_is_fixed_and_another_key_fails() -> None:
    signed = AssertionSigner(SECRET).sign(
        audience=AUDIENCE, method="GET", target="/api/a/tasks", body=b"", user_id="a", request_id="r"
    )
    assert jwt.get_unverified_header(signed) == {"alg": "HS256", "typ": TYPE}
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(signed, b"t" * 32, algorithms=["HS256"], audience=AUDIENCE)


def test_every_assertion_has_its_own_id() -> None:
    signer = AssertionSigner(SECRET)
    ids = {
        jwt.decode(
            signer.sign(audience=AUDIENCE, method="GET", target="/s", body=b"", user_id=None, request_id="r"),
            SECRET,
            algorithms=["HS256"],
            audience=AUDIENCE,
        )["jti"]
        for _ in range(1000)
    }
    assert len(ids) == 1000


@given(audience=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True), user_id=st.none() | st.text())
def test_the_audience_is_the_upstream_and_no_user_means_no_sub(audience: str, user_id: str | None) -> None:
    """One signer serves every upstream: each assertion names its own, and an `auth: none` route's has no `sub`."""
    signer = AssertionSigner(SECRET)
    signed = signer.sign(audience=audience, method="GET", target="/status", body=b"", user_id=user_id, request_id="r")
    claims = jwt.decode(signed, SECRET, algorithms=["HS256"], audience=audience, issuer=ISSUER)
    assert claims["aud"] == audience and claims.get("sub") == user_id
    assert set(claims) == {"iss", "aud", "mth", "tgt", "bdy", "iat", "exp", "jti", "rid"} | (
        {"sub"} if user_id is not None else set()
    )
    if audience != AUDIENCE:
        with pytest.raises(jwt.InvalidAudienceError):
            jwt.decode(signed, SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)


@given(body=st.binary(max_size=200), other=st.binary(max_size=200))
def test_the_shared_verifier_takes_what_the_gateway_signs_once_for_its_body(body: bytes, other: bytes) -> None:
    signed = AssertionSigner(SECRET).sign(
        audience="notes", method="POST", target="/orgs/o/notes", body=body, user_id="alice", request_id="r"
    )
    verifier = AssertionVerifier([SECRET], "notes")
    if other != body:
        with pytest.raises(AssertionRejected, match="body"):
            verifier.verify(signed, "POST", b"/orgs/o/notes", other, None)
    with pytest.raises(AssertionRejected, match="aud"):
        AssertionVerifier([SECRET], AUDIENCE).verify(signed, "POST", b"/orgs/o/notes", body, None)
    assert verifier.verify(signed, "POST", b"/orgs/o/notes", body, "alice").user == "alice"
    with pytest.raises(AssertionRejected, match="replayed"):
        verifier.verify(signed, "POST", b"/orgs/o/notes", body, "alice")


@given(
    bound=st.dictionaries(
        st.from_regex(r"x-[a-z0-9-]{1,20}", fullmatch=True), st.none() | st.text(max_size=40), max_size=4
    )
)
def test_claim_headers_are_bound_exactly_and_only_when_the_route_copies_any(bound: dict[str, str | None]) -> None:
    """`hdr` carries the copied headers as sent (None: not sent), whatever their text: escaped, never injected."""
    signer = AssertionSigner(SECRET)

    def claims(headers: dict[str, str | None] | None) -> dict[str, object]:
        signed = signer.sign(
            audience=AUDIENCE, method="GET", target="/t", body=b"", user_id="a", request_id="r", claim_headers=headers
        )
        decoded: dict[str, object] = jwt.decode(signed, SECRET, algorithms=["HS256"], audience=AUDIENCE)
        return decoded

    with_headers, without = claims(bound), claims(None)
    assert with_headers["hdr"] == bound and set(with_headers) - set(without) == {"hdr"}
