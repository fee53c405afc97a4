"""Only a valid gateway assertion for this exact request gets in (docs/contract.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from taskgate_assertion.format import body_digest
from tests.task_service.signer import INTERNAL_SECRET, ROTATED_SECRET, Api, claims_for, sign

Forge = Callable[[str, str], str]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _hs256(header: dict[str, Any], claims: Any, secret: str = INTERNAL_SECRET) -> str:
    """Signed with the right secret over any header and payload, which pyjwt's encoder would refuse to make."""
    signing_input = f"{_b64(header)}.{_b64(claims)}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _header(**extra: Any) -> Forge:
    return lambda m, t: _hs256({"alg": "HS256", "typ": "tg-assertion+jwt", **extra}, claims_for(m, t, "alice"))


def _with(**overrides: Any) -> Forge:
    return lambda method, target: sign(claims_for(method, target, "alice", **overrides))


def _alg_none(method: str, target: str) -> str:
    header = {"alg": "none", "typ": "tg-assertion+jwt"}
    return f"{_b64(header)}.{_b64(claims_for(method, target, 'alice'))}."


def _signed_with(secret: str, **header_extra: Any) -> Forge:
    return lambda method, target: jwt.encode(
        claims_for(method, target, "alice"),
        secret,
        algorithm="HS256",
        headers={"typ": "tg-assertion+jwt", **header_extra},
    )


def _hs512(method: str, target: str) -> str:
    return jwt.encode(
        claims_for(method, target, "alice"), INTERNAL_SECRET, algorithm="HS512", headers={"typ": "tg-assertion+jwt"}
    )


def _now() -> int:
    return int(time.time())


REJECTED: dict[str, Forge | str] = {
    "garbage": "not.a.jwt",
    "empty": "",
    "alg none": _alg_none,
    "hs512": _hs512,
    "user token secret": _signed_with("a-user-token-secret-that-is-long-enough-1234567890"),
    "wrong typ": lambda m, t: sign(claims_for(m, t, "alice"), typ="JWT"),
    # Time-bound cases read the clock when the test runs: made at import, they would age during a long
    # suite ("issued in the future" would become merely expired, and pass for the wrong reason).
    "expired": lambda m, t: _with(iat=_now() - 100, exp=_now() - 70)(m, t),
    "issued in the future": lambda m, t: _with(iat=_now() + 60, exp=_now() + 90)(m, t),
    "lifetime over 30 s": lambda m, t: _with(iat=_now(), exp=_now() + 31)(m, t),
    "float times": lambda m, t: _with(iat=float(_now()), exp=float(_now() + 30))(m, t),
    "no exp": _with(exp=None),
    "no iat": _with(iat=None),
    "wrong aud": _with(aud="someone-else"),
    "aud list": _with(aud=["task-service"]),
    "no jti": _with(jti=None),
    "empty jti": _with(jti=""),
    "no body digest": _with(bdy=None),
    "digest of another body": _with(bdy=body_digest(b"{}")),
    "no sub": _with(sub=None),
    "wrong iss": _with(iss="not-the-gateway"),
    "no iss": _with(iss=None),
    "wrong method": lambda m, t: sign(claims_for("GET" if m != "GET" else "DELETE", t, "alice")),
    "lower-case method": lambda m, t: sign(claims_for(m.lower(), t, "alice")),
    "wrong target": lambda m, t: sign(claims_for(m, t + "/1", "alice")),
    "target without query": lambda m, t: sign(claims_for(m, t.split("?")[0], "alice")),
    "empty sub": _with(sub=""),
    "numeric sub": _with(sub=7),
    "sub too long for a user id": lambda m, t: sign(claims_for(m, t.replace("alice", "a" * 129), "a" * 129)),
    "sub with a slash": lambda m, t: sign(claims_for(m, t, "alice/..")),
    "jti not a string": _with(jti=7),
    "payload not an object": lambda m, t: _hs256({"alg": "HS256", "typ": "tg-assertion+jwt"}, [claims_for(m, t, "a")]),
    "kid not a string": _header(kid=7),
    "a critical extension": _header(crit=["exp"], exp=1),
    "detached payload": _header(b64=False),
    "two segments": lambda m, t: sign(claims_for(m, t, "alice")).rsplit(".", 1)[0],
    "four segments": lambda m, t: sign(claims_for(m, t, "alice")) + ".e30",
    "junk after the signature": lambda m, t: sign(claims_for(m, t, "alice")) + "!!",
    "not ASCII": lambda m, t: sign(claims_for(m, t, "alice")) + "\u00e9",
}


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [("GET", "/api/alice/tasks?status=pending&q=a", None), ("POST", "/api/alice/tasks?via=form", {"title": "sneaky"})],
)
async def test_bad_assertion_is_401_and_writes_nothing(
    api: Api, method: str, url: str, body: dict[str, Any] | None
) -> None:
    for name, assertion in REJECTED.items():
        response = await api.request(method, url, assertion=assertion, json=body)
        assert response.status_code == 401, name
        assert response.json() == {"detail": "missing or invalid gateway assertion"}, name
    listing = await api.request("GET", "/api/alice/tasks")
    assert listing.headers["x-total-count"] == "0"


async def test_missing_assertion_is_401_even_with_x_user_id(api: Api) -> None:
    response = await api.request(
        "POST", "/api/alice/tasks", user=None, headers={"X-User-Id": "alice"}, json={"title": "x"}
    )
    assert response.status_code == 401
    assert (await api.request("GET", "/api/alice/tasks")).headers["x-total-count"] == "0"


async def test_invalid_body_without_assertion_is_401_not_422(api: Api) -> None:
    response = await api.request(
        "POST", "/api/alice/tasks", user=None, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401


async def test_x_user_id_must_equal_sub(api: Api) -> None:
    response = await api.request("GET", "/api/alice/tasks", assertion=_with(), headers={"X-User-Id": "bob"})
    assert response.status_code == 401
    response = await api.request("GET", "/api/alice/tasks", assertion=_with(), headers={"X-User-Id": "alice"})
    assert response.status_code == 200


async def test_x_user_id_is_optional(api: Api) -> None:
    response = await api.request("GET", "/api/alice/tasks", assertion=_with())
    assert response.status_code == 200


async def test_two_assertion_headers_are_401(api: Api) -> None:
    good = sign(claims_for("GET", "/api/alice/tasks", "alice"))
    response = await api.client.get(
        "/api/alice/tasks", headers=[("X-Gateway-Assertion", good), ("X-Gateway-Assertion", good)]
    )
    assert response.status_code == 401
    # The refused attempt did not use up the id: the real request still passes.
    response = await api.client.get("/api/alice/tasks", headers=[("X-Gateway-Assertion", good)])
    assert response.status_code == 200


async def test_an_assertion_is_accepted_once(api: Api) -> None:
    good = sign(claims_for("GET", "/api/alice/tasks", "alice"))
    assert (await api.request("GET", "/api/alice/tasks", assertion=good)).status_code == 200
    response = await api.request("GET", "/api/alice/tasks", assertion=good)
    assert response.status_code == 401
    assert response.json() == {"detail": "missing or invalid gateway assertion"}


async def test_the_assertion_binds_the_body(api: Api) -> None:
    """A captured POST assertion is refused with another body, and with its own body once it was used."""
    body = b'{"title":"mine"}'
    signed = sign(claims_for("POST", "/api/alice/tasks", "alice", body))
    json_type = {"Content-Type": "application/json"}
    for other in (b'{"title":"planted"}', b'{"title":"mine"} ', b""):
        response = await api.request("POST", "/api/alice/tasks", assertion=signed, content=other, headers=json_type)
        assert response.status_code == 401, other
    created = await api.request("POST", "/api/alice/tasks", assertion=signed, content=body, headers=json_type)
    assert created.status_code == 201 and created.json()["title"] == "mine"
    again = await api.request("POST", "/api/alice/tasks", assertion=signed, content=body, headers=json_type)
    assert again.status_code == 401
    listing = await api.request("GET", "/api/alice/tasks")
    assert [task["title"] for task in listing.json()] == ["mine"]


async def test_rotated_secret_is_accepted(api: Api) -> None:
    response = await api.request("GET", "/api/alice/tasks", assertion=_signed_with(ROTATED_SECRET))
    assert response.status_code == 200


async def test_target_is_compared_on_the_raw_bytes(api: Api) -> None:
    created = await api.create()
    assert created["id"] == 1
    # %31 is "1": an assertion over the decoded path must not be accepted for the raw one.
    raw, decoded = "/api/alice/tasks/%31", "/api/alice/tasks/1"
    response = await api.request("GET", raw, assertion=lambda m, t: sign(claims_for(m, decoded, "alice")))
    assert response.status_code == 401
    response = await api.request("GET", raw)
    assert response.status_code == 200
    assert response.json()["id"] == created["id"]


async def test_query_string_is_part_of_the_target(api: Api) -> None:
    signed_for = "/api/alice/tasks?status=pending"
    response = await api.request(
        "GET", "/api/alice/tasks?status=completed", assertion=lambda m, t: sign(claims_for(m, signed_for, "alice"))
    )
    assert response.status_code == 401
    response = await api.request("GET", "/api/alice/tasks?status=pending")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("POST", "", {"title": "planted"}),
        ("GET", "/1", None),
        ("PUT", "/1", {"title": "x"}),
        ("PATCH", "/1", {"title": "x"}),
        ("DELETE", "/1", None),
        ("PATCH", "/1/complete", None),
    ],
)
async def test_path_user_other_than_sub_is_403_and_writes_nothing(
    api: Api, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    victim = await api.create(user="bob", title="bobs")
    url = f"/api/bob/tasks{suffix.replace('/1', '/' + str(victim['id']))}"
    response = await api.request(method, url, user="alice", json=body)
    assert response.status_code == 403
    assert response.json() == {"detail": "the path's user is not the acting user"}
    listing = await api.request("GET", "/api/bob/tasks", user="bob")
    assert listing.json() == [victim]


async def test_health_needs_no_assertion(api: Api) -> None:
    assert (await api.request("GET", "/healthz", user=None)).json() == {"status": "ok"}
    assert (await api.request("GET", "/readyz", user=None)).status_code == 200
