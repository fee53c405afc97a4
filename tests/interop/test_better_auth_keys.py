"""Key life cycles against the real issuer: expiry, other JWKS algorithms, rotation, an issuer restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.better_auth import running_issuer
from tests.support.processes import free_port
from tests.support.services import Service, running_gateway

from .conftest import MODES, gateway_settings, issuer_and_gateway, issuer_settings
from .test_better_auth_tokens import assert_invalid_token, auth, tasks
from .tokens import segments, verify_like_a_relying_party, with_flipped_signature

pytestmark = pytest.mark.slow


def poll_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("mode", MODES)
def test_expired_token_is_rejected(mode: str, tmp_path: Path, task_service: Service, internal_secret: str) -> None:
    """A one-second token from the issuer, checked with no leeway once its exp has passed."""
    with issuer_and_gateway(
        tmp_path, mode, task_service, internal_secret, {"BA_JWT_TTL_S": "1"}, {"GATEWAY_JWT_LEEWAY_S": "0"}
    ) as (issuer, gateway, shared_secret):
        user = issuer.sign_up("eve")
        token = issuer.jwt(user)
        exp = segments(token)[1]["exp"]
        poll_until(lambda: time.time() > exp + 1, 10, "the token to expire")
        response = httpx.get(f"{gateway.url}{tasks(user.id)}", headers=auth(token))
        assert_invalid_token(response)
        # Apart from exp the token is genuine: the same checks with exp ignored accept it.
        claims = verify_like_a_relying_party(token, issuer, shared_secret, verify_exp=False)
        assert (claims["sub"], claims["exp"] - claims["iat"]) == (user.id, 1)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256"])
def test_other_jwks_algorithms_are_verified(
    alg: str, tmp_path: Path, task_service: Service, internal_secret: str
) -> None:
    with issuer_and_gateway(tmp_path, "eddsa", task_service, internal_secret, {"JWKS_ALG": alg}) as (
        issuer,
        gateway,
        _,
    ):
        user = issuer.sign_up("carol")
        token = issuer.jwt(user)
        assert segments(token)[0]["alg"] == alg
        assert [key["alg"] for key in issuer.jwks()["keys"]] == [alg]
        with httpx.Client(base_url=gateway.url) as client:
            created = client.post(tasks(user.id), json={"title": alg}, headers=auth(token))
            assert created.status_code == 201, created.text
            assert created.json()["user_id"] == user.id
            assert_invalid_token(client.get(tasks(user.id), headers=auth(with_flipped_signature(token))))


def test_tokens_keep_working_across_key_rotations(tmp_path: Path, task_service: Service, internal_secret: str) -> None:
    """With a 1 s rotationInterval the issuer mints new keys while old ones stay published for the grace period."""
    with issuer_and_gateway(
        tmp_path, "eddsa", task_service, internal_secret, {"JWKS_ROTATION_S": "1", "JWKS_GRACE_S": "300"}
    ) as (issuer, gateway, _):
        user = issuer.sign_up("dave")
        by_kid: dict[str, str] = {}

        def new_kid_signed() -> bool:
            token = issuer.jwt(user)
            by_kid.setdefault(segments(token)[0]["kid"], token)
            return len(by_kid) >= 3

        with httpx.Client(base_url=gateway.url) as client:
            first = issuer.jwt(user)
            by_kid[segments(first)[0]["kid"]] = first
            assert client.get(tasks(user.id), headers=auth(first)).status_code == 200
            poll_until(new_kid_signed, 20, "two key rotations")
            assert set(by_kid) <= {key["kid"] for key in issuer.jwks()["keys"]}
            for token in by_kid.values():
                assert client.get(tasks(user.id), headers=auth(token)).status_code == 200


def test_issuer_restarted_with_a_new_key_is_picked_up(
    tmp_path: Path, task_service: Service, internal_secret: str
) -> None:
    """Same issuer URL, new database and so a new key: the gateway finds the new kid by refetching the JWKS."""
    port = free_port()
    settings = issuer_settings("eddsa", None)
    with running_issuer(tmp_path, settings, port=port, name="issuer-before") as before:
        user = before.sign_up("frank")
        old_token = before.jwt(user)
        gateway_env = gateway_settings(before, None)
        with running_gateway(tmp_path, task_service.url, internal_secret, gateway_env) as gateway:
            assert httpx.get(f"{gateway.url}{tasks(user.id)}", headers=auth(old_token)).status_code == 200
            before.process.stop()
            with running_issuer(tmp_path, settings, port=port, name="issuer-after") as after:
                newcomer = after.sign_up("grace")
                new_token = after.jwt(newcomer)
                assert segments(new_token)[0]["kid"] != segments(old_token)[0]["kid"]
                response = httpx.get(f"{gateway.url}{tasks(newcomer.id)}", headers=auth(new_token))
    assert response.status_code == 200, response.text
    assert response.json() == []
