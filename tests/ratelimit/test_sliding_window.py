"""The exact sliding window on every backend, with an injected clock."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from cloudops.ratelimit.backends.base import StateBackend
from cloudops.ratelimit.limiter import RateLimiter
from tests.ratelimit.conftest import FakeClock

pytestmark = pytest.mark.django_db


def limiter(backend: StateBackend, clock: FakeClock, calls: int = 3, window: float = 60) -> RateLimiter:
    return RateLimiter(calls, window, "t", clock=clock, backend=backend)


def test_it_admits_exactly_the_limit_then_refuses(backend: StateBackend, clock: FakeClock) -> None:
    rl = limiter(backend, clock)
    results = [rl.check_sync("k") for _ in range(5)]
    assert results == [True, True, True, False, False]


def test_the_window_slides_one_request_at_a_time(backend: StateBackend, clock: FakeClock) -> None:
    rl = limiter(backend, clock)
    start = clock.now
    for _ in range(3):
        assert rl.check_sync("k")
        clock.advance(10)  # hits at start, start+10, start+20
    clock.now = start + 59.9
    assert not rl.check_sync("k")
    clock.now = start + 60.0  # the first hit is exactly one window old: it no longer counts
    assert rl.check_sync("k")
    assert not rl.check_sync("k")
    clock.now = start + 70.0  # the second one leaves
    assert rl.check_sync("k")


def test_refused_requests_are_not_counted(backend: StateBackend, clock: FakeClock) -> None:
    """A client hammering while refused regains access when its admitted requests age out."""
    rl = limiter(backend, clock, calls=2)
    start = clock.now
    assert rl.check_sync("k") and rl.check_sync("k")
    for _ in range(30):
        clock.advance(1)
        assert not rl.check_sync("k")
    clock.now = start + 60
    assert rl.check_sync("k")


def test_retry_after_and_reset_are_the_real_time_until_the_oldest_leaves(
    backend: StateBackend, clock: FakeClock
) -> None:
    rl = limiter(backend, clock, calls=2)
    first = clock.now
    rl.hit_sync("k")
    clock.advance(15)
    rl.hit_sync("k")
    clock.advance(14.4)  # 29.4 s after the first hit
    refused = rl.hit_sync("k")
    assert not refused.allowed
    assert refused.retry_after == 31  # 30.6 s left, rounded up
    assert refused.reset_at == pytest.approx(first + 60)
    assert refused.remaining == 0


def test_usage_reports_count_limit_remaining_and_reset(backend: StateBackend, clock: FakeClock) -> None:
    rl = limiter(backend, clock, calls=5)
    assert rl.get_usage_sync("k") == {"count": 0, "limit": 5, "remaining": 5, "reset_in_seconds": 0}
    rl.check_sync("k")
    clock.advance(20.5)
    rl.check_sync("k")
    assert rl.get_usage_sync("k") == {"count": 2, "limit": 5, "remaining": 3, "reset_in_seconds": 40}
    # Reading usage does not count.
    assert rl.get_usage_sync("k")["count"] == 2


def test_keys_and_prefixes_have_separate_budgets(backend: StateBackend, clock: FakeClock) -> None:
    a = RateLimiter(1, 60, "a", clock=clock, backend=backend)
    b = RateLimiter(1, 60, "b", clock=clock, backend=backend)
    assert a.check_sync("k") and not a.check_sync("k")
    assert a.check_sync("other")
    assert b.check_sync("k")


def test_reset_gives_the_full_budget_back(backend: StateBackend, clock: FakeClock) -> None:
    rl = limiter(backend, clock, calls=1)
    assert rl.check_sync("k") and not rl.check_sync("k")
    assert rl.reset_sync("k") is True
    assert rl.check_sync("k")
    assert rl.reset_sync("never-seen") is False


def test_violations_and_tracked_clients_are_counted(backend: StateBackend, clock: FakeClock) -> None:
    rl = limiter(backend, clock, calls=1)
    before = backend.violations_total()
    for client in ("c1", "c2", "c3"):
        rl.check_sync(client)
    rl.check_sync("c1")
    rl.check_sync("c1")
    assert backend.violations_total() == before + 2
    assert backend.tracked_clients(now=clock.now) == 3
    assert {s.key for s in backend.keys(now=clock.now)} == {"t:c1", "t:c2", "t:c3"}
    assert backend.tracked_clients(now=clock.now + 61) == 0


# Transactional: on the database backend the async API runs the ORM in Django's sync thread,
# which must see committed rows (and, on SQLite, not wait for the test's own transaction).
@pytest.mark.django_db(transaction=True)
async def test_the_async_api_matches_the_guide(backend: StateBackend, clock: FakeClock) -> None:
    from cloudops.ratelimit.limiter import get_rate_limiter

    rl = await get_rate_limiter(max_requests=2, window_seconds=60, key_prefix="api", clock=clock, backend=backend)
    assert await rl.check("user:123")
    async with rl.track("user:123") as allowed:
        assert allowed
    async with rl.track("user:123") as allowed:
        assert not allowed
    usage = await rl.get_usage("user:123")
    assert usage == {"count": 2, "limit": 2, "remaining": 0, "reset_in_seconds": 60}
    # The ORM ran in Django's sync thread: close its connection so the test database can go.
    await sync_to_async(connections.close_all)()


def test_internal_bookkeeping_keys_are_neither_clients_nor_violations(backend: StateBackend, clock: FakeClock) -> None:
    before = backend.violations_total()
    for _ in range(3):
        backend.hit("~audit:203.0.113.1", limit=1, window=60, now=clock.now)
    assert backend.violations_total() == before
    assert backend.tracked_clients(now=clock.now) == 0
    assert backend.keys(now=clock.now) == []
