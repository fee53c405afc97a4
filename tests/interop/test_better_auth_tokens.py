"""Tokens from the real Better Auth issuer, in both modes, driving the real gateway and task service."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.services import Service, running_gateway

from .conftest import Stack, gateway_settings
from .tokens import hs256, segments, verify_like_a_relying_party, with_alg_none, with_claims, with_flipped_signature

pytestmark = pytest.mark.slow

BETTER_AUTH_TTL_S = 900


def tasks(user_id: str, suffix: str = "") -> str:
    return f"/api/{user_id}/tasks{suffix}"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert "detail" in response.json()
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_token_has_the_documented_shape(stack: Stack) -> None:
    token = stack.issuer.jwt(stack.alice)
    header, claims = segments(token)
    if stack.mode == "hs256":
        assert header == {"alg": "HS256", "typ": "JWT"}
    else:
        assert header["alg"] == "EdDSA"
        assert header["kid"] in {key["kid"] for key in stack.issuer.jwks()["keys"]}
    assert claims["sub"] == claims["id"] == stack.alice.id
    assert claims["email"] == stack.alice.email
    assert claims["iss"] == claims["aud"] == stack.issuer.origin
    assert claims["exp"] - claims["iat"] == BETTER_AUTH_TTL_S
    assert verify_like_a_relying_party(token, stack.issuer, stack.shared_secret)["sub"] == stack.alice.id


def test_own_tasks_work_end_to_end(stack: Stack) -> None:
    headers = auth(stack.issuer.jwt(stack.alice))
    me = stack.alice.id
    with stack.client() as client:
        created = client.post(tasks(me), json={"title": " Buy milk ", "description": "2 l"}, headers=headers)
        assert created.status_code == 201, created.text
        task = created.json()
        assert (task["user_id"], task["title"], task["completed"]) == (me, "Buy milk", False)
        assert created.headers["Location"] == tasks(me, f"/{task['id']}")

        listed = client.get(tasks(me), params={"q": "milk"}, headers=headers)
        assert listed.status_code == 200
        assert [t["id"] for t in listed.json()] == [task["id"]]
        assert listed.headers["X-Total-Count"] == "1"

        renamed = client.patch(tasks(me, f"/{task['id']}"), json={"title": "Buy oat milk"}, headers=headers)
        assert renamed.json()["title"] == "Buy oat milk"
        toggled = client.patch(tasks(me, f"/{task['id']}/complete"), headers=headers)
        assert toggled.json()["completed"] is True
        done = client.get(tasks(me), params={"status": "completed", "q": "oat"}, headers=headers)
        assert [t["id"] for t in done.json()] == [task["id"]]

        assert client.delete(tasks(me, f"/{task['id']}"), headers=headers).status_code == 204
        assert client.get(tasks(me, f"/{task['id']}"), headers=headers).status_code == 404


def test_another_users_path_is_forbidden(stack: Stack) -> None:
    alice = auth(stack.issuer.jwt(stack.alice))
    bob = auth(stack.issuer.jwt(stack.bob))
    with stack.client() as client:
        assert client.get(tasks(stack.bob.id), headers=alice).status_code == 403
        assert client.post(tasks(stack.bob.id), json={"title": "planted"}, headers=alice).status_code == 403
        listed = client.get(tasks(stack.bob.id), params={"q": "planted"}, headers=bob)
    assert listed.status_code == 200
    assert listed.json() == []


def test_another_users_task_is_not_found(stack: Stack) -> None:
    alice = auth(stack.issuer.jwt(stack.alice))
    bob = auth(stack.issuer.jwt(stack.bob))
    with stack.client() as client:
        secret = client.post(tasks(stack.bob.id), json={"title": "bob's secret"}, headers=bob).json()
        path = tasks(stack.alice.id, f"/{secret['id']}")
        assert client.get(path, headers=alice).status_code == 404
        assert client.patch(path, json={"title": "mine now"}, headers=alice).status_code == 404
        assert client.patch(f"{path}/complete", headers=alice).status_code == 404
        assert client.delete(path, headers=alice).status_code == 404
        intact = client.get(tasks(stack.bob.id, f"/{secret['id']}"), headers=bob)
    assert intact.status_code == 200
    assert (intact.json()["title"], intact.json()["completed"]) == ("bob's secret", False)


def test_tampered_tokens_are_rejected(stack: Stack) -> None:
    token = stack.issuer.jwt(stack.alice)
    forged = {
        "flipped signature": with_flipped_signature(token),
        "sub swapped to bob": with_claims(token, sub=stack.bob.id, id=stack.bob.id),
        "exp extended": with_claims(token, exp=segments(token)[1]["exp"] + 3600),
        "alg none": with_alg_none(token),
    }
    with stack.client() as client:
        for name, bad in forged.items():
            user = stack.bob.id if "bob" in name else stack.alice.id
            response = client.get(tasks(user), headers=auth(bad))
            assert response.status_code == 401, name
            assert_invalid_token(response)
            assert token not in response.text and bad not in response.text


def test_keys_the_gateway_does_not_hold_are_rejected(stack: Stack) -> None:
    """HS256 with anything but the shared secret fails; in JWKS mode, public key material as the HMAC key."""
    header, claims = segments(stack.issuer.jwt(stack.alice))
    if stack.mode == "hs256":
        candidates = [b"another secret of at least thirty-two bytes"]
    else:
        jwk = stack.issuer.jwks()["keys"][0]
        candidates = [jwk["x"].encode(), json.dumps(jwk).encode(), json.dumps(stack.issuer.jwks()).encode()]
    with stack.client() as client:
        for key in candidates:
            forged = hs256({**header, "alg": "HS256"}, claims, key)
            assert_invalid_token(client.get(tasks(stack.alice.id), headers=auth(forged)))


@pytest.mark.parametrize("claim", ["AUDIENCE", "ISSUER"])
def test_token_for_another_audience_or_issuer_is_rejected(
    stack: Stack, claim: str, tmp_path: Path, task_service: Service, internal_secret: str
) -> None:
    """A genuine token from the issuer, shown to a gateway that expects another aud / iss."""
    settings = gateway_settings(
        stack.issuer, stack.shared_secret, {f"GATEWAY_JWT_{claim}": "https://elsewhere.example"}
    )
    token = stack.issuer.jwt(stack.alice)
    with running_gateway(tmp_path, task_service.url, internal_secret, settings) as gateway:
        response = httpx.get(f"{gateway.url}{tasks(stack.alice.id)}", headers=auth(token))
    assert_invalid_token(response)
    with stack.client() as client:
        assert client.get(tasks(stack.alice.id), headers=auth(token)).status_code == 200
