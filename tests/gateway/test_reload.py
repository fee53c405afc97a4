"""Pipeline.reload (what SIGHUP runs in each worker): the new policy swapped in whole, a request in flight
finishing under the old one on its old pool, a new issuer's key set fetched before the swap, and a file that
does not validate refused with one log line while the running policy stays."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from aiohttp import ClientSession, web

from tests.gateway.test_jwks import ISSUER, Issuer, issuer  # noqa: F401  (the JWKS fixture)
from tests.gateway_fixtures import GatewayFactory, Recorder, bearer, make_token, recording_upstream

ROUTE = """
  - path: /api/{{user_id}}/tasks
    methods: [GET]
    upstream: {upstream}
    match: {{user_id: sub}}
"""


def policy_text(upstreams: dict[str, str], upstream: str, issuers: str = "") -> str:
    names = "".join(f'  {name}: {{url: "{url}"}}\n' for name, url in upstreams.items())
    return f"upstreams:\n{names}{issuers}routes:{ROUTE.format(upstream=upstream)}"


async def status(url: str, token: str) -> int:
    async with ClientSession() as client, client.get(f"{url}/api/alice/tasks", headers=bearer(token)) as resp:
        return resp.status


async def test_a_request_in_flight_finishes_on_the_retired_upstream(
    tmp_path: Path, recorder: Recorder, start_gateway: GatewayFactory
) -> None:
    release = asyncio.Event()

    async def held(_request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"from": "first"})

    recorder.reply = held
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text({"first": recorder.url}, "first"))
    gw = await start_gateway(policy_file=policy)
    token = make_token("alice")
    in_flight = asyncio.create_task(status(gw.url, token))
    async with asyncio.timeout(10):
        while not recorder.received:
            await asyncio.sleep(0.01)
    async with recording_upstream() as second:
        policy.write_text(policy_text({"second": second.url}, "second"))
        old = gw.pipeline.runtime
        assert old is not None
        assert await gw.pipeline.reload() is True
        assert gw.pipeline.runtime is not old and list(gw.pipeline.runtime.pools) == ["second"]
        assert await status(gw.url, token) == 200  # the new policy, at once
        assert len(second.received) == 1
        retiring = old.pools["first"]
        assert retiring.inflight == 1  # not cut off by the reload
        release.set()
        assert await asyncio.wait_for(in_flight, 10) == 200
        assert len(recorder.received) == 1


async def test_a_new_issuer_is_usable_as_soon_as_the_reload_returns(
    tmp_path: Path,
    recorder: Recorder,
    start_gateway: GatewayFactory,
    issuer: Issuer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer.add("k1", "EdDSA")
    monkeypatch.setenv("RELOAD_TEST_SECRET", "reload-test-issuer-secret-" + "r" * 24)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text({"api": recorder.url}, "api", "issuers:\n  jobs: {secret_env: RELOAD_TEST_SECRET}\n"))
    gw = await start_gateway(policy_file=policy, jwt_secret=None)
    assert await status(gw.url, issuer.token("k1")) == 401
    assert issuer.fetches == 0
    with_jwks = f'  ba: {{jwks_url: "{issuer.url}", issuer: "{ISSUER}", audience: "{ISSUER}"}}\n'
    policy.write_text(policy_text({"api": recorder.url}, "api", f"issuers:\n{with_jwks}"))
    assert await gw.pipeline.reload() is True
    assert issuer.fetches == 1  # fetched before the swap
    assert await status(gw.url, issuer.token("k1")) == 200
    assert len(recorder.received) == 1


async def test_an_invalid_file_is_refused_with_one_log_line_and_the_policy_stays(
    tmp_path: Path, recorder: Recorder, start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text({"api": recorder.url}, "api"))
    gw = await start_gateway(policy_file=policy)
    running = gw.pipeline.runtime
    policy.write_text(policy_text({"api": recorder.url}, "elsewhere"))
    with caplog.at_level(logging.INFO, logger="gateway"):
        assert await gw.pipeline.reload() is False
    [line] = [r.getMessage() for r in caplog.records if r.name == "gateway"]
    assert line == (
        f"policy reload refused, the running policy stays: {policy}:6: route 1 (/api/{{user_id}}/tasks): "
        "upstream 'elsewhere' is not defined under 'upstreams'"
    )
    assert gw.pipeline.runtime is running
    assert await status(gw.url, make_token("alice")) == 200


async def test_without_a_policy_file_there_is_nothing_to_reload(
    recorder: Recorder, start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    gw = await start_gateway(policy_file=None)
    running = gw.pipeline.runtime
    with caplog.at_level(logging.INFO, logger="gateway"):
        assert await gw.pipeline.reload() is False
    assert [r.getMessage() for r in caplog.records if r.name == "gateway"] == [
        "policy reload: GATEWAY_POLICY_FILE is not set; the built-in default policy stays"
    ]
    assert gw.pipeline.runtime is running
