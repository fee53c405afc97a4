"""The assertion binds the exact body forwarded and is accepted once (docs/contract.md, "The gateway assertion").

The attack: someone inside the network captures an `X-Gateway-Assertion` for `POST /api/alice/tasks` and sends
it straight to the task service with a body of their own, or again with the same body. Here a recording
upstream plays the captured hop: the test then delivers the captured request to a real task service process
exactly as the gateway would have (accepted), and replays it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from aiohttp import ClientSession

from taskgate_assertion.format import LIFETIME_S
from tests.gateway_fixtures import INTERNAL_SECRET, GatewayFactory, Received, Recorder, bearer, make_token
from tests.support.services import Service, running_task_service

JSON = {"Content-Type": "application/json"}


def _sha256(body: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()


def _claims(got: Received) -> dict[str, object]:
    [assertion] = got.header("X-Gateway-Assertion")
    claims: dict[str, object] = jwt.decode(
        assertion, INTERNAL_SECRET, algorithms=["HS256"], audience="task-service", issuer="taskgate-gateway"
    )
    return claims


@pytest.fixture(scope="module")
def task_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    work: Path = tmp_path_factory.mktemp("binding")
    with running_task_service(work, INTERNAL_SECRET) as svc:
        yield svc


async def _capture(start_gateway: GatewayFactory, recorder: Recorder, body: bytes) -> Received:
    gw = await start_gateway()
    async with ClientSession() as client:
        resp = await client.post(
            gw.make_url("/api/alice/tasks"), data=body, headers={**bearer(make_token("alice")), **JSON}
        )
        assert resp.status == 200  # the recorder's answer
    [got] = recorder.received[-1:]
    return got


def _deliver(svc: Service, got: Received, body: bytes) -> httpx.Response:
    """Send what the recorder received (its assertion and identity) to the real task service with `body`."""
    headers = {
        "X-Gateway-Assertion": got.header("X-Gateway-Assertion")[0],
        "X-User-Id": got.header("X-User-Id")[0],
        **JSON,
    }
    return httpx.post(f"{svc.url}{got.raw_path}", content=body, headers=headers, timeout=5)


async def test_the_assertion_carries_the_body_digest_a_unique_id_and_a_short_lifetime(
    recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway()
    body = b'{"title":"digest me","notes":"\\u00e9"}'
    async with ClientSession() as client:
        for _ in range(2):
            resp = await client.post(
                gw.make_url("/api/alice/tasks"), data=body, headers={**bearer(make_token("alice")), **JSON}
            )
            assert resp.status == 200
        resp = await client.get(gw.make_url("/api/alice/tasks"), headers=bearer(make_token("alice")))
        assert resp.status == 200
    first, second, bodiless = recorder.received
    assert first.body == second.body == body
    assert _claims(first)["bdy"] == _claims(second)["bdy"] == _sha256(body)
    assert _claims(bodiless)["bdy"] == _sha256(b"") and bodiless.body == b""
    ids = {_claims(got)["jti"] for got in recorder.received}
    assert len(ids) == 3
    for got in recorder.received:
        claims = _claims(got)
        assert claims["exp"] - claims["iat"] == LIFETIME_S  # type: ignore[operator]


async def test_a_captured_assertion_is_refused_with_another_body_and_a_second_time(
    recorder: Recorder, start_gateway: GatewayFactory, task_service: Service
) -> None:
    body = b'{"title":"the real one"}'
    got = await _capture(start_gateway, recorder, body)
    assert got.body == body
    # Another body first: refused, and the refusal does not use up the id the real request still needs.
    for other in (b'{"title":"planted"}', body + b" ", b""):
        replay = _deliver(task_service, got, other)
        assert (replay.status_code, replay.json()) == (401, {"detail": "missing or invalid gateway assertion"})
    delivered = _deliver(task_service, got, body)
    assert delivered.status_code == 201 and delivered.json()["title"] == "the real one"
    # The same request again, byte for byte: refused as a replay, and nothing is written.
    for again in (body, b'{"title":"planted"}'):
        replay = _deliver(task_service, got, again)
        assert (replay.status_code, replay.json()) == (401, {"detail": "missing or invalid gateway assertion"})
    listing = await _list_through_gateway(start_gateway, task_service)
    assert [task["title"] for task in listing] == ["the real one"]


async def _list_through_gateway(start_gateway: GatewayFactory, svc: Service) -> list[dict[str, object]]:
    """alice's tasks read through a gateway in front of the real service: what was written, and only that."""
    gw = await start_gateway(upstream_url=svc.url)
    async with ClientSession() as client:
        resp = await client.get(gw.make_url("/api/alice/tasks"), headers=bearer(make_token("alice")))
        assert resp.status == 200
        listing: list[dict[str, object]] = await resp.json()
    return listing
