"""Sign-out ends API access: the real issuer's revocation feed followed by real gateway processes (issue 16).

Every wait is a bounded poll against the promise: after the issuer answers a sign-out, each gateway refuses the
session's tokens within REVOCATION_BOUND_S.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_workers import admin_port_pair
from tests.support.better_auth import Issuer, running_issuer
from tests.support.revocation import REVOCATION_BOUND_S, refused_within, tasks_status
from tests.support.services import Service, new_secret, running_gateway

from .conftest import MODES, gateway_settings, issuer_settings
from .test_better_auth_tokens import assert_invalid_token, auth, tasks
from .tokens import segments

pytestmark = pytest.mark.slow


@dataclass
class Revoking:
    """An issuer with its revocation feed on, and a way to start gateways that follow it."""

    issuer: Issuer
    secret: str
    shared_secret: str | None
    work_dir: Path
    task_service: Service
    internal_secret: str
    stack: ExitStack

    def settings(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        revocation = {"GATEWAY_REVOCATION_URL": self.issuer.revocations_url, "GATEWAY_REVOCATION_SECRET": self.secret}
        return gateway_settings(self.issuer, self.shared_secret, {**revocation, **(extra or {})})

    def gateway(self, name: str, extra: Mapping[str, str] | None = None, port: int | None = None) -> Service:
        log_dir = self.work_dir / name
        return self.stack.enter_context(
            running_gateway(log_dir, self.task_service.url, self.internal_secret, self.settings(extra), port=port)
        )


@contextmanager
def revoking(work_dir: Path, mode: str, task_service: Service, internal_secret: str) -> Iterator[Revoking]:
    secret = new_secret()
    shared_secret = new_secret() if mode == "hs256" else None
    with ExitStack() as stack:
        settings = issuer_settings(mode, shared_secret, {"BA_REVOCATION_SECRET": secret})
        issuer = stack.enter_context(running_issuer(work_dir, settings))
        yield Revoking(issuer, secret, shared_secret, work_dir, task_service, internal_secret, stack)


@pytest.mark.parametrize("mode", MODES)
def test_sign_out_ends_that_sessions_api_access_within_the_bound(
    mode: str, tmp_path: Path, task_service: Service, internal_secret: str
) -> None:
    with revoking(tmp_path, mode, task_service, internal_secret) as setup:
        issuer = setup.issuer
        gateway = setup.gateway("gateway")
        laptop = issuer.sign_up("ada")
        phone = issuer.sign_in(laptop.email)
        signed_out, kept = issuer.jwt(laptop), issuer.jwt(phone)
        assert segments(signed_out)[1]["sid"] != segments(kept)[1]["sid"]
        for token in (signed_out, kept, signed_out):  # the last one answers from the verified-token cache
            assert tasks_status(gateway.url, laptop.id, token) == 200

        issuer.sign_out(laptop)
        assert refused_within(gateway.url, laptop.id, signed_out) == 401
        assert_invalid_token(httpx.get(f"{gateway.url}{tasks(laptop.id)}", headers=auth(signed_out)))
        assert tasks_status(gateway.url, laptop.id, kept) == 200  # the same user's other session

        again = issuer.sign_in(laptop.email)
        assert tasks_status(gateway.url, laptop.id, issuer.jwt(again)) == 200  # a new sign-in works at once

        # The feed's entry outlives every token of the session the gateway could still accept.
        feed = issuer.revocations(setup.secret).json()
        sid, exp = segments(signed_out)[1]["sid"], segments(signed_out)[1]["exp"]
        assert next(entry for entry in feed["revoked"] if entry.get("sid") == sid)["exp"] >= exp


def test_revoke_sessions_refuses_every_session(tmp_path: Path, task_service: Service, internal_secret: str) -> None:
    with revoking(tmp_path, "eddsa", task_service, internal_secret) as setup:
        issuer = setup.issuer
        gateway = setup.gateway("gateway")
        first = issuer.sign_up("grace")
        second = issuer.sign_in(first.email)
        tokens = [issuer.jwt(first), issuer.jwt(second)]
        assert [tasks_status(gateway.url, first.id, token) for token in tokens] == [200, 200]
        issuer.revoke_sessions(second)
        assert [refused_within(gateway.url, first.id, token) for token in tokens] == [401, 401]
        assert tasks_status(gateway.url, first.id, issuer.jwt(issuer.sign_in(first.email))) == 200


def metric(admin_url: str, name: str) -> float | None:
    match = re.search(rf"^{name} (\S+)$", httpx.get(f"{admin_url}/metrics").text, re.MULTILINE)
    return float(match[1]) if match else None


def test_every_gateway_process_and_worker_refuses(tmp_path: Path, task_service: Service, internal_secret: str) -> None:
    with revoking(tmp_path, "eddsa", task_service, internal_secret) as setup:
        issuer = setup.issuer
        admin = admin_port_pair()
        one = setup.gateway("one")
        two = setup.gateway("two", {"GATEWAY_WORKERS": "2", "GATEWAY_ADMIN_PORT": str(admin)})
        workers = [f"http://127.0.0.1:{admin + index}" for index in (0, 1)]
        user = issuer.sign_up("lin")
        token = issuer.jwt(user)
        assert tasks_status(one.url, user.id, token) == tasks_status(two.url, user.id, token) == 200

        issuer.sign_out(user)
        assert refused_within(one.url, user.id, token) == 401
        assert refused_within(two.url, user.id, token) == 401
        deadline = time.monotonic() + REVOCATION_BOUND_S
        for worker in workers:  # each worker polls on its own; both hold the revocation within the bound
            while metric(worker, "taskgate_gateway_revocations") != 1.0:
                assert time.monotonic() < deadline, f"{worker} did not load the revocation"
                time.sleep(0.02)
        # Fresh connections until both workers have answered one; every answer is a refusal.
        refusals = (
            'taskgate_gateway_requests_total{method="GET",outcome="unauthenticated",'
            'route="/api/{user_id}/tasks",status="401"}'
        )
        deadline = time.monotonic() + 60
        while not all(metric(worker, re.escape(refusals)) for worker in workers):
            assert time.monotonic() < deadline, "only one worker answered"
            assert tasks_status(two.url, user.id, token) == 401


def test_a_gateway_restarted_after_the_revocation_refuses_at_once(
    tmp_path: Path, task_service: Service, internal_secret: str
) -> None:
    with revoking(tmp_path, "eddsa", task_service, internal_secret) as setup:
        issuer = setup.issuer
        first = setup.gateway("first")
        user = issuer.sign_up("ida")
        token = issuer.jwt(user)
        assert tasks_status(first.url, user.id, token) == 200
        issuer.sign_out(user)
        assert refused_within(first.url, user.id, token) == 401
        port = int(first.url.rsplit(":", 1)[1])
        first.process.stop()
        # The restarted gateway loads the revocations before it listens: its very first answer is a refusal.
        restarted = setup.gateway("restarted", port=port)
        assert tasks_status(restarted.url, user.id, token) == 401
        ready = httpx.get(f"{restarted.url}/readyz").json()
        assert ready["checks"]["revocations"] is True
        assert ready["revocations"]["entries"] == 1


def test_with_the_issuer_stopped_the_gateway_keeps_serving_and_refusing(
    tmp_path: Path, task_service: Service, internal_secret: str
) -> None:
    with revoking(tmp_path, "eddsa", task_service, internal_secret) as setup:
        issuer = setup.issuer
        gateway = setup.gateway("gateway")
        gone = issuer.sign_up("joan")
        stays = issuer.sign_in(gone.email)
        revoked, used, unused = issuer.jwt(gone), issuer.jwt(stays), issuer.jwt(stays)
        assert tasks_status(gateway.url, gone.id, used) == 200
        issuer.sign_out(gone)
        assert refused_within(gateway.url, gone.id, revoked) == 401

        issuer.process.stop()
        deadline = time.monotonic() + 30
        while not (ready := httpx.get(f"{gateway.url}/readyz")).json()["revocations"]["failing"]:
            assert time.monotonic() < deadline, "the gateway never noticed the feed was gone"
            time.sleep(0.05)
        assert ready.status_code == 200  # an unreachable feed does not fail readiness by default
        assert ready.json()["revocations"]["entries"] == 1
        assert tasks_status(gateway.url, gone.id, revoked) == 401
        assert tasks_status(gateway.url, gone.id, used) == 200
        assert tasks_status(gateway.url, gone.id, unused) == 200  # keys and revocations both from before


def test_the_feed_answers_only_with_its_secret(tmp_path: Path, task_service: Service, internal_secret: str) -> None:
    with revoking(tmp_path, "eddsa", task_service, internal_secret) as setup:
        issuer = setup.issuer
        for secret in (None, new_secret(), setup.secret[:-1], setup.secret + "x"):
            refused = issuer.revocations(secret)
            assert refused.status_code == 401, secret
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
            assert setup.secret not in refused.text
        with httpx.Client() as client:
            basic = client.get(issuer.revocations_url, auth=("gateway", setup.secret))
        assert basic.status_code == 401
        feed = issuer.revocations(setup.secret)
        assert feed.status_code == 200
        assert feed.headers["Cache-Control"] == "no-store"
        assert set(feed.json()) == {"cursor", "more", "revoked"}
        assert issuer.revocations(setup.secret, after=feed.json()["cursor"]).status_code == 200
        assert issuer.revocations(setup.secret, after="../etc").status_code == 400


def test_without_its_secret_the_issuer_serves_no_feed(tmp_path: Path) -> None:
    with running_issuer(tmp_path, {}) as issuer:
        assert issuer.revocations(new_secret()).status_code == 404
