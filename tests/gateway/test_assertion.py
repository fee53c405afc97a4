"""The gateway assertion is built by hand for speed; pyjwt must read back exactly the claims that went in."""

from __future__ import annotations

import time

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.policy.assertion import AUDIENCE, ISSUER, LIFETIME_S, TYPE, AssertionSigner

SECRET = b"s" * 32


@given(
    method=st.text(max_size=10),
    target=st.text(max_size=200),
    user_id=st.text(max_size=40),
    request_id=st.text(max_size=40),
)
def test_any_value_round_trips_as_one_claim(method: str, target: str, user_id: str, request_id: str) -> None:
    """Quotes, backslashes, controls and non-ASCII stay inside their own claim: nothing can inject another."""
    signed = AssertionSigner(SECRET).sign(
        audience=AUDIENCE, method=method, target=target, user_id=user_id, request_id=request_id
    )
    claims = jwt.decode(signed, SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)
    assert {k: claims[k] for k in ("sub", "mth", "tgt", "rid")} == {
        "sub": user_id,
        "mth": method,
        "tgt": target,
        "rid": request_id,
    }
    assert set(claims) == {"iss", "aud", "sub", "mth", "tgt", "iat", "exp", "rid"}
    assert claims["exp"] - claims["iat"] == LIFETIME_S and abs(claims["iat"] - time.time()) < 5


def test_header_is_fixed_and_another_key_fails() -> None:
    signed = AssertionSigner(SECRET).sign(
        audience=AUDIENCE, method="GET", target="/api/a/tasks", user_id="a", request_id="r"
    )
    assert jwt.get_unverified_header(signed) == {"alg": "HS256", "typ": TYPE}
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(signed, b"t" * 32, algorithms=["HS256"], audience=AUDIENCE)


@given(audience=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True), user_id=st.none() | st.text())
def test_the_audience_is_the_upstream_and_no_user_means_no_sub(audience: str, user_id: str | None) -> None:
    """One signer serves every upstream: each assertion names its own, and an `auth: none` route's has no `sub`."""
    signer = AssertionSigner(SECRET)
    signed = signer.sign(audience=audience, method="GET", target="/status", user_id=user_id, request_id="r")
    claims = jwt.decode(signed, SECRET, algorithms=["HS256"], audience=audience, issuer=ISSUER)
    assert claims["aud"] == audience and claims.get("sub") == user_id
    assert set(claims) == {"iss", "aud", "mth", "tgt", "iat", "exp", "rid"} | (
        {"sub"} if user_id is not None else set()
    )
    if audience != AUDIENCE:
        with pytest.raises(jwt.InvalidAudienceError):
            jwt.decode(signed, SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)
