"""The revocation feed client and the set it keeps: cursors, refused feeds, bounded fetches, expiry, and the
verifier consulting the set for cached and fresh verdicts alike (in front of a recording upstream)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientSession, web
from prometheus_client import generate_latest

from gateway.auth.revocations import FeedError, FeedPage, RevocationFeed, RevocationList, parse_feed
from gateway.auth.verifier import Identity
from gateway.settings import ConfigError
from tests.gateway_fixtures import (
    INTERNAL_SECRET,
    JWT_SECRET,
    GatewayFactory,
    GatewayUnderTest,
    Recorder,
    bearer,
    gateway_settings,
    make_token,
)

FEED_SECRET = "test-revocation-feed-secret-" + "r" * 24
LIVENESS_BOUND_S = 10.0
NOW = 1_800_000_000.0


@dataclass
class Feed:
    """A revocation feed the test controls: entries in order, pages of `page_size`, or a failure mode."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 1000
    mode: str = "ok"  # ok | hang | status | body
    body: bytes = b""
    seen: list[tuple[str | None, str | None]] = field(default_factory=list)  # (Authorization, after)
    url: str = ""

    def revoke_session(self, sid: str, exp: float | None = None) -> None:
        self.entries.append({"sid": sid, "exp": exp if exp is not None else time.time() + 900})

    def revoke_user(self, sub: str, before: float, exp: float | None = None) -> None:
        self.entries.append({"sub": sub, "before": before, "exp": exp if exp is not None else time.time() + 900})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.headers.get("Authorization"), request.query.get("after")))
        if self.mode == "hang":
            await asyncio.Event().wait()
        if self.mode == "status":
            return web.json_response({"message": "no"}, status=401)
        if self.mode == "body":
            return web.Response(body=self.body, content_type="application/json")
        start = int(request.query.get("after", "0"))
        page = self.entries[start : start + self.page_size]
        end = start + len(page)
        return web.json_response({"cursor": str(end), "more": end < len(self.entries), "revoked": page})


@pytest.fixture
async def feed() -> AsyncIterator[Feed]:
    f = Feed()
    app = web.Application()
    app.router.add_get("/api/auth/revocations", f.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    f.url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/auth/revocations"
    yield f
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[ClientSession]:
    async with ClientSession() as s:
        yield s


def client(feed: Feed, **overrides: Any) -> RevocationFeed:
    options: dict[str, Any] = {"poll_s": 3600.0, "timeout_s": 0.5, "max_bytes": 64 * 1024, "max_stale_s": None}
    options.update(overrides)
    return RevocationFeed(feed.url, FEED_SECRET.encode(), RevocationList(leeway_s=30), **options)


def identity(user: str = "alice", sid: str | None = "s1", iat: float | None = NOW) -> Identity:
    return Identity(user_id=user, valid_until=NOW + 900, session_id=sid, issued_at=iat)


# --- the feed format -------------------------------------------------------------------------------------------


def test_a_page_reads_sessions_and_user_cut_offs() -> None:
    page = parse_feed(
        json.dumps(
            {
                "cursor": "00017",
                "more": True,
                "revoked": [
                    {"sid": "s1", "exp": NOW},
                    {"sid": "s1", "exp": NOW + 5},
                    {"sub": "bob", "before": NOW - 10, "exp": NOW + 900},
                    {"sub": "bob", "before": NOW - 5, "exp": NOW + 800},
                ],
            }
        ).encode()
    )
    assert page == FeedPage("00017", True, {"s1": NOW + 5}, {"bob": (NOW - 5, NOW + 900)})
    assert parse_feed(b'{"cursor": "c", "revoked": []}').more is False


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"revoked": []}',  # no cursor
        b'{"cursor": "", "revoked": []}',
        b'{"cursor": "a b", "revoked": []}',  # not URL-safe
        b'{"cursor": "' + b"c" * 129 + b'", "revoked": []}',
        b'{"cursor": 5, "revoked": []}',
        b'{"cursor": "c", "more": "yes", "revoked": []}',
        b'{"cursor": "c"}',
        b'{"cursor": "c", "revoked": {}}',
        b'{"cursor": "c", "revoked": ["s1"]}',
        b'{"cursor": "c", "revoked": [{"exp": 1}]}',  # neither sid nor sub: a kind this gateway does not know
        b'{"cursor": "c", "revoked": [{"jti": "x", "exp": 1}]}',
        b'{"cursor": "c", "revoked": [{"sid": "s1"}]}',
        b'{"cursor": "c", "revoked": [{"sid": "s1", "exp": "1"}]}',
        b'{"cursor": "c", "revoked": [{"sid": "s1", "exp": true}]}',
        b'{"cursor": "c", "revoked": [{"sid": "s1", "exp": -1}]}',
        b'{"cursor": "c", "revoked": [{"sid": "s1", "exp": 1e400}]}',
        b'{"cursor": "c", "revoked": [{"sid": "s1", "exp": NaN}]}',
        b'{"cursor": "c", "revoked": [{"sid": "", "exp": 1}]}',
        b'{"cursor": "c", "revoked": [{"sid": 7, "exp": 1}]}',
        b'{"cursor": "c", "revoked": [{"sid": "' + b"s" * 257 + b'", "exp": 1}]}',
        b'{"cursor": "c", "revoked": [{"sub": "bob", "exp": 1}]}',  # a user entry needs its cut-off
        b'{"cursor": "c", "revoked": [{"sub": null, "before": 1, "exp": 1}]}',
    ],
)
def test_malformed_pages_are_refused(body: bytes) -> None:
    with pytest.raises(FeedError):
        parse_feed(body)


# --- the set ---------------------------------------------------------------------------------------------------


def test_sessions_and_user_cut_offs_match_only_what_they_name() -> None:
    revoked = RevocationList(leeway_s=30, clock=lambda: NOW)
    revoked.merge(FeedPage("c", False, {"s1": NOW + 900}, {"bob": (NOW, NOW + 900)}))
    assert revoked.revoked(identity(sid="s1"))
    assert not revoked.revoked(identity(sid="s2"))
    assert not revoked.revoked(identity(sid=None))
    assert revoked.revoked(identity("bob", sid="s9", iat=NOW - 1))
    assert not revoked.revoked(identity("bob", sid="s9", iat=NOW))  # issued at the cut-off: after the revocation
    assert revoked.revoked(identity("bob", sid=None, iat=None))  # cannot show it is newer: refused
    assert len(revoked) == 2


def test_entries_are_forgotten_once_no_token_they_match_can_be_valid() -> None:
    now = [NOW]
    revoked = RevocationList(leeway_s=30, clock=lambda: now[0])
    revoked.merge(FeedPage("c", False, {"s1": NOW + 10, "gone": NOW - 31}, {"bob": (NOW, NOW + 100)}))
    assert len(revoked) == 2  # an entry already past exp + leeway is never added
    revoked.merge(FeedPage("c", False, {"s1": NOW + 5}, {}))  # an earlier exp never shortens an entry
    now[0] = NOW + 10 + 30
    revoked.expire()
    assert not revoked.revoked(identity(sid="s1"))
    assert revoked.revoked(identity("bob", iat=NOW - 1))
    now[0] = NOW + 130
    revoked.expire()
    assert len(revoked) == 0
    assert not revoked.revoked(identity("bob", iat=NOW - 1))


# --- the client ------------------------------------------------------------------------------------------------


async def test_polls_resume_from_the_cursor_and_follow_more(feed: Feed, session: ClientSession) -> None:
    for i in range(5):
        feed.revoke_session(f"s{i}")
    feed.page_size = 2
    revocations = client(feed)
    await revocations.start(session)
    try:
        assert revocations.revoked.loaded
        assert [after for _, after in feed.seen] == [None, "2", "4"]
        assert all(auth == f"Bearer {FEED_SECRET}" for auth, _ in feed.seen)
        assert all(revocations.revoked.revoked(identity(sid=f"s{i}")) for i in range(5))
        feed.revoke_session("s5")
        assert await revocations.poll()
        assert [after for _, after in feed.seen][3:] == ["5"]
        assert revocations.revoked.revoked(identity(sid="s5"))
        assert revocations.status()["entries"] == 6
    finally:
        await revocations.stop()


@pytest.mark.parametrize(
    ("mode", "body"),
    [
        ("body", b'{"cursor": "9", "revoked": [{"sid": "s9"}]}'),
        ("body", b"<html>maintenance</html>"),
        ("body", json.dumps({"cursor": "9", "revoked": [{"sid": "x", "exp": NOW * 2}] * 4000}).encode()),  # > 64 KiB
        ("status", b""),
    ],
    ids=["malformed", "not-json", "oversized", "refused"],
)
async def test_a_bad_answer_keeps_the_last_good_set_and_cursor(
    feed: Feed, session: ClientSession, mode: str, body: bytes
) -> None:
    feed.revoke_session("s1")
    revocations = client(feed)
    await revocations.start(session)
    try:
        feed.mode, feed.body = mode, body
        assert not await revocations.poll()
        assert revocations.failures == 1
        assert revocations.status()["failing"] is True
        assert revocations.revoked.revoked(identity(sid="s1"))
        assert not revocations.revoked.revoked(identity(sid="s9"))
        assert revocations.ready  # loaded once; staleness alone does not fail readiness by default
        feed.mode = "ok"
        feed.revoke_session("s2")
        assert await revocations.poll()
        assert feed.seen[-1][1] == "1"  # resumed where the last good answer ended
        assert revocations.revoked.revoked(identity(sid="s2"))
        assert revocations.status()["failing"] is False
    finally:
        await revocations.stop()


async def test_a_hanging_feed_is_bounded_by_the_timeout(feed: Feed, session: ClientSession) -> None:
    feed.mode = "hang"
    revocations = client(feed, timeout_s=0.2)
    async with asyncio.timeout(LIVENESS_BOUND_S):
        await revocations.start(session)
        assert not await revocations.poll()
    try:
        assert revocations.failures == 2
        assert not revocations.revoked.loaded
        assert not revocations.ready
        assert revocations.status() == {"loaded": False, "entries": 0, "age_s": None, "failing": True}
    finally:
        await revocations.stop()


async def test_readiness_can_require_a_recent_update(feed: Feed, session: ClientSession) -> None:
    clock = [100.0]
    revocations = client(feed, max_stale_s=10.0, monotonic=lambda: clock[0])
    await revocations.start(session)
    try:
        assert revocations.ready
        clock[0] = 110.0
        assert revocations.ready
        clock[0] = 110.5
        assert not revocations.ready
        assert await revocations.poll()
        assert revocations.ready
    finally:
        await revocations.stop()


async def test_the_background_poller_picks_up_new_revocations(feed: Feed, session: ClientSession) -> None:
    revocations = client(feed, poll_s=0.05)
    await revocations.start(session)
    try:
        feed.revoke_session("late")
        async with asyncio.timeout(LIVENESS_BOUND_S):
            while not revocations.revoked.revoked(identity(sid="late")):
                await asyncio.sleep(0.01)
    finally:
        await revocations.stop()


# --- settings --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"revocation_url": "http://auth.example/api/auth/revocations"}, "GATEWAY_REVOCATION_SECRET"),
        ({"revocation_secret": FEED_SECRET}, "GATEWAY_REVOCATION_URL is not"),
        ({"revocation_url": "http://a.example/r", "revocation_secret": "short"}, "too weak"),
        ({"revocation_url": "http://a.example/r", "revocation_secret": INTERNAL_SECRET}, "must differ"),
        ({"revocation_url": "http://a.example/r", "revocation_secret": JWT_SECRET}, "must differ"),
        ({"revocation_url": "http://a.example/r", "revocation_secret": "é" * 32}, "printable ASCII"),
    ],
)
def test_revocation_settings_are_checked(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        gateway_settings("http://127.0.0.1:1", **overrides)


def test_the_secret_may_come_from_a_file_and_the_first_of_a_list_is_sent(tmp_path: Any) -> None:
    path = tmp_path / "secret"
    path.write_text(f"{FEED_SECRET},{FEED_SECRET}-old\n")
    settings = gateway_settings("http://127.0.0.1:1", revocation_url="http://a.example/r", revocation_secret_file=path)
    assert settings.revocation_secret_value == FEED_SECRET.encode()
    assert settings.revocation_poll_s == 1.0
    assert gateway_settings("http://127.0.0.1:1").revocation_secret_value is None


# --- through the gateway ---------------------------------------------------------------------------------------


async def start_revoking_gateway(start_gateway: GatewayFactory, feed: Feed) -> GatewayUnderTest:
    return await start_gateway(
        revocation_url=feed.url, revocation_secret=FEED_SECRET, revocation_poll_s=300.0, revocation_timeout_s=0.5
    )


async def poll(gw: GatewayUnderTest) -> bool:
    """One poll now, instead of waiting for the background one."""
    assert gw.pipeline.revocations is not None
    return await gw.pipeline.revocations.poll()


async def status(gw: GatewayUnderTest, token: str) -> int:
    async with ClientSession() as c:
        return (await c.get(gw.make_url("/api/alice/tasks"), headers=bearer(token))).status


async def test_a_revoked_session_is_refused_whether_cached_or_not(
    start_gateway: GatewayFactory, recorder: Recorder, feed: Feed
) -> None:
    gw = await start_revoking_gateway(start_gateway, feed)
    cached, fresh, other = make_token(sid="s1", jti="a"), make_token(sid="s1", jti="b"), make_token(sid="s2")
    assert await status(gw, cached) == 200
    assert await status(gw, cached) == 200
    assert gw.verifier.cache_hits == 1
    feed.revoke_session("s1")
    assert await poll(gw)
    assert await status(gw, cached) == 401  # the cached verdict does not outlive the revocation
    assert await status(gw, fresh) == 401  # never seen before: refused by the full verification
    assert await status(gw, other) == 200  # the same user's other session keeps working
    assert len(recorder.received) == 3


async def test_a_user_cut_off_refuses_older_tokens_and_accepts_newer_ones(
    start_gateway: GatewayFactory, feed: Feed
) -> None:
    gw = await start_revoking_gateway(start_gateway, feed)
    now = int(time.time())
    old = make_token("alice", iat=now - 60, exp=now + 600)
    assert await status(gw, old) == 200
    feed.revoke_user("alice", before=now - 30)
    assert await poll(gw)
    assert await status(gw, old) == 401
    assert await status(gw, make_token("alice", iat=now, exp=now + 600)) == 200


async def test_until_the_first_load_nothing_is_accepted_and_readiness_says_why(
    start_gateway: GatewayFactory, recorder: Recorder, feed: Feed
) -> None:
    feed.mode = "status"
    gw = await start_revoking_gateway(start_gateway, feed)
    async with ClientSession() as c:
        ready = await c.get(gw.make_url("/readyz"))
        assert ready.status == 503
        body = await ready.json()
        assert body["checks"]["revocations"] is False
        assert body["revocations"] == {"loaded": False, "entries": 0, "age_s": None, "failing": True}
        refused = await c.get(gw.make_url("/api/alice/tasks"), headers=bearer(make_token(sid="s1")))
        assert refused.status == 503
        assert refused.headers["Retry-After"] == "1"
        assert (await refused.json()) == {"detail": "revocations not loaded yet"}
        assert recorder.received == []
        feed.mode = "ok"
        assert await poll(gw)
        assert (await c.get(gw.make_url("/readyz"))).status == 200
        assert (await c.get(gw.make_url("/api/alice/tasks"), headers=bearer(make_token(sid="s1")))).status == 200


async def test_an_unreachable_issuer_keeps_the_last_set_and_shows_in_readyz_and_metrics(
    start_gateway: GatewayFactory, feed: Feed
) -> None:
    feed.revoke_session("s1")
    gw = await start_revoking_gateway(start_gateway, feed)
    feed.mode = "status"
    assert not await poll(gw)
    assert await status(gw, make_token(sid="s1")) == 401
    assert await status(gw, make_token(sid="s2")) == 200
    async with ClientSession() as c:
        ready = await c.get(gw.make_url("/readyz"))
    assert ready.status == 200
    assert (await ready.json())["revocations"]["failing"] is True
    text = generate_latest(gw.pipeline.metrics.registry).decode()
    assert "taskgate_gateway_revocations 1.0" in text
    assert 'taskgate_gateway_revocation_polls_total{result="failed"} 1.0' in text
    assert 'taskgate_gateway_revocation_polls_total{result="ok"} 1.0' in text
    assert "taskgate_gateway_revocations_age_seconds " in text


async def test_without_a_url_there_is_no_feed_and_no_check(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    assert gw.pipeline.revocations is None
    assert await status(gw, make_token(sid="anything")) == 200
    text = generate_latest(gw.pipeline.metrics.registry).decode()
    assert "taskgate_gateway_revocations_age_seconds NaN" in text
