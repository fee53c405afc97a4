"""The replay cache: an id is accepted once while its assertion could still be accepted, memory stays bounded
by the lifetime (ids are forgotten as they expire) and by a hard cap that refuses rather than forgets."""

from __future__ import annotations

import pytest

from taskgate_assertion.format import CLOCK_SKEW_S
from taskgate_assertion.verify import AssertionRejected, ReplayCache

NOW = 1_000_000.0


def test_an_id_is_accepted_once() -> None:
    cache = ReplayCache()
    cache.admit("a", exp=int(NOW) + 10, now=NOW)
    with pytest.raises(AssertionRejected, match="replayed"):
        cache.admit("a", exp=int(NOW) + 10, now=NOW + 1)
    cache.admit("b", exp=int(NOW) + 10, now=NOW + 1)
    assert len(cache) == 2


def test_an_id_is_remembered_until_its_assertion_expires_with_the_skew() -> None:
    """Forgotten only when the verifier would refuse the assertion as expired anyway (exp <= now - skew)."""
    cache = ReplayCache()
    exp = int(NOW) + 10
    cache.admit("a", exp=exp, now=NOW)
    with pytest.raises(AssertionRejected, match="replayed"):
        cache.admit("a", exp=exp, now=exp + CLOCK_SKEW_S - 0.5)
    cache.admit("other", exp=exp + 30, now=exp + CLOCK_SKEW_S)  # prunes "a"
    assert len(cache) == 1


def test_expired_ids_are_pruned_in_order_and_memory_follows_the_rate() -> None:
    cache = ReplayCache(capacity=1_000)
    for second in range(100):  # 5 ids a second, each valid 10 s: at most (10 + skew + 1) × 5 held
        for n in range(5):
            now = NOW + second
            cache.admit(f"{second}-{n}", exp=int(now) + 10, now=now)
            assert len(cache) <= (10 + CLOCK_SKEW_S + 1) * 5
    assert len(cache) > (10 + CLOCK_SKEW_S - 1) * 5


def test_an_id_behind_a_later_expiry_is_kept_longer_never_shorter() -> None:
    """Gateways with different clocks send exp out of order: an id is never forgotten before its exp."""
    cache = ReplayCache()
    cache.admit("late", exp=int(NOW) + 30, now=NOW)
    cache.admit("early", exp=int(NOW) + 10, now=NOW)
    with pytest.raises(AssertionRejected, match="replayed"):
        cache.admit("early", exp=int(NOW) + 10, now=NOW + 12)


def test_a_full_cache_fails_closed_until_ids_expire() -> None:
    cache = ReplayCache(capacity=3)
    for jti in "abc":
        cache.admit(jti, exp=int(NOW) + 10, now=NOW)
    with pytest.raises(AssertionRejected, match="full"):
        cache.admit("d", exp=int(NOW) + 10, now=NOW + 1)
    with pytest.raises(AssertionRejected, match="replayed"):  # full, yet what it holds is still refused
        cache.admit("a", exp=int(NOW) + 10, now=NOW + 1)
    cache.admit("d", exp=int(NOW) + 30, now=NOW + 10 + CLOCK_SKEW_S)
    assert len(cache) == 1


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ReplayCache(capacity=0)
