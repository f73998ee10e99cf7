"""The limiter's extension API, as docs/rate-limiting.md's "Python API" documents it.

The surface itself is pinned here, so a name is added or removed on purpose. Entry points that
no other test calls directly are tested here, on every backend; the others are tested where
their behaviour is: `check_sync`, `hit_sync`, `get_usage_sync`, `reset_sync`, `get_rate_limiter`,
`check`, `track` and `get_usage` in test_sliding_window.py, `check_request` and
`check_request_sync` in test_outage_and_headers.py, the presets in test_middleware.py.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from cloudops.ratelimit import limiter as limiter_module
from cloudops.ratelimit.backends.base import StateBackend
from cloudops.ratelimit.limiter import (
    RateLimiter,
    get_rate_limiter_sync,
    s3_rate_limiter,
    webhook_rate_limiter,
)
from cloudops.ratelimit.rules import DEFAULT_RULES, KEY_STORAGE, first_match
from tests.ratelimit.conftest import FakeClock

pytestmark = pytest.mark.django_db


def test_the_public_names_are_the_documented_ones() -> None:
    assert sorted(limiter_module.__all__) == [
        "BackendUnavailable",
        "Decision",
        "RateLimiter",
        "get_rate_limiter",
        "get_rate_limiter_sync",
        "s3_rate_limiter",
        "webhook_rate_limiter",
    ]
    assert {name for name in dir(RateLimiter) if not name.startswith("_")} == {
        "check",
        "check_sync",
        "check_request",
        "check_request_sync",
        "get_usage",
        "get_usage_sync",
        "hit",
        "hit_sync",
        "reset",
        "reset_sync",
        "track",
        "track_sync",
    }


def test_get_rate_limiter_sync_gives_a_limiter_with_those_numbers(backend: StateBackend, clock: FakeClock) -> None:
    rl = get_rate_limiter_sync(2, 60, "api", clock=clock, backend=backend)

    assert (rl.max_requests, rl.window_seconds, rl.key_prefix, rl.fail_open) == (2, 60.0, "api", True)
    assert [rl.check_sync("user:1") for _ in range(3)] == [True, True, False]
    assert {s.key for s in backend.keys(now=clock.now)} == {"api:user:1"}


def test_track_sync_counts_on_entry_and_tells_the_block(backend: StateBackend, clock: FakeClock) -> None:
    rl = RateLimiter(1, 60, "api", clock=clock, backend=backend)

    with rl.track_sync("user:1") as allowed:
        assert allowed
        assert rl.get_usage_sync("user:1")["count"] == 1
    with rl.track_sync("user:1") as allowed:
        assert not allowed
    assert rl.get_usage_sync("user:1")["count"] == 1


@pytest.mark.django_db(transaction=True)
async def test_hit_returns_the_decision_and_counts_only_when_recording(backend: StateBackend, clock: FakeClock) -> None:
    rl = RateLimiter(2, 60, "api", clock=clock, backend=backend)

    looked = await rl.hit("user:1", record=False)
    first = await rl.hit("user:1")
    clock.advance(10)
    second = await rl.hit("user:1")
    refused = await rl.hit("user:1")

    assert (looked.allowed, looked.count) == (True, 0)
    assert (first.allowed, first.count, first.remaining) == (True, 1, 1)
    assert (second.allowed, second.count, second.remaining) == (True, 2, 0)
    assert (refused.allowed, refused.count, refused.remaining) == (False, 2, 0)
    assert refused.reset_at == first.now + 60 and refused.retry_after == 50
    await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
async def test_reset_gives_the_key_its_whole_budget_back(backend: StateBackend, clock: FakeClock) -> None:
    rl = RateLimiter(1, 60, "api", clock=clock, backend=backend)
    assert await rl.check("user:1") and not await rl.check("user:1")

    assert await rl.reset("user:1") is True

    assert await rl.check("user:1")
    assert await rl.reset("never-seen") is False
    await sync_to_async(connections.close_all)()


@pytest.mark.parametrize(
    ("path", "preset", "key"),
    [("/api/webhooks/replicate", webhook_rate_limiter, "ip"), ("/api/cloud/storage/b/o", s3_rate_limiter, KEY_STORAGE)],
)
def test_the_presets_numbers_are_the_ones_their_rules_apply(path: str, preset: RateLimiter, key: str) -> None:
    rule = first_match(DEFAULT_RULES, path, "PUT")

    assert rule is not None and rule.limiter is preset
    assert (rule.calls, rule.period, rule.name, rule.key) == (
        preset.max_requests,
        preset.window_seconds,
        preset.key_prefix,
        key,
    )
    assert (webhook_rate_limiter.max_requests, webhook_rate_limiter.window_seconds) == (100, 60)
    assert (s3_rate_limiter.max_requests, s3_rate_limiter.window_seconds) == (50, 60)
