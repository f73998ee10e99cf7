"""The database backend's one-statement check: a process decides on the log it last saw for a
key and writes only if the row still holds it. Two backend objects stand for two processes
(each remembers its own logs); whatever the other did in between, the decisions are those
of the locked check."""

from __future__ import annotations

import pytest
from django.db import connection

from cloudops.ratelimit.backends import sqlpool
from cloudops.ratelimit.backends.database import DatabaseBackend, decode_hits
from cloudops.ratelimit.models import RateLimitBucket
from tests.ratelimit.conftest import FakeClock

# Outside a transaction, so the checks run on the pooled connections as in a server.
pytestmark = pytest.mark.django_db(transaction=True)


def processes() -> tuple[DatabaseBackend, DatabaseBackend]:
    return DatabaseBackend(prune_every=10**9), DatabaseBackend(prune_every=10**9)


def test_two_processes_taking_turns_on_one_key_admit_exactly_the_limit(clock: FakeClock) -> None:
    first, second = processes()
    admitted = []
    for n in range(10):
        clock.advance(0.5)
        backend = first if n % 2 == 0 else second
        admitted.append(backend.hit("turns:k", limit=5, window=60, now=clock.now).allowed)
    assert admitted == [True] * 5 + [False] * 5
    stored = RateLimitBucket.objects.get(key="turns:k").hits
    assert decode_hits(stored) == [1_700_000_000.0 + 0.5 * n for n in range(1, 6)]
    assert first.violations_total() == 5


def test_a_count_made_by_another_process_is_not_overwritten(clock: FakeClock) -> None:
    first, second = processes()
    assert first.hit("cas:k", limit=3, window=60, now=clock.now).count == 1
    assert second.hit("cas:k", limit=3, window=60, now=clock.now + 1).count == 2
    # `first` still remembers a log of one hit: the row no longer holds it.
    decision = first.hit("cas:k", limit=3, window=60, now=clock.now + 2)
    assert decision.allowed and decision.count == 3
    assert not second.hit("cas:k", limit=3, window=60, now=clock.now + 3).allowed


def test_a_reset_by_another_process_gives_the_key_a_fresh_budget(clock: FakeClock) -> None:
    first, second = processes()
    for _ in range(2):
        first.hit("reset:k", limit=2, window=60, now=clock.now)
    assert not first.hit("reset:k", limit=2, window=60, now=clock.now).allowed
    assert second.reset("reset:k")
    decision = first.hit("reset:k", limit=2, window=60, now=clock.now + 1)
    assert decision.allowed and decision.count == 1


def test_a_pruned_key_starts_again_from_an_empty_log(clock: FakeClock) -> None:
    first, second = processes()
    first.hit("pruned:k", limit=2, window=60, now=clock.now)
    clock.advance(61)
    assert second.prune(now=clock.now) == 1
    decision = first.hit("pruned:k", limit=2, window=60, now=clock.now)
    assert decision.allowed and decision.count == 1
    assert RateLimitBucket.objects.get(key="pruned:k").expires_at == clock.now + 60


def test_the_remembered_hits_leave_the_window_as_time_passes(clock: FakeClock) -> None:
    backend, _ = processes()
    for _ in range(3):
        backend.hit("slide:k", limit=3, window=10, now=clock.now)
    refused = backend.hit("slide:k", limit=3, window=10, now=clock.now + 5)
    assert not refused.allowed and refused.retry_after == 5
    decision = backend.hit("slide:k", limit=3, window=10, now=clock.now + 10.5)
    assert decision.allowed and decision.count == 1
    assert RateLimitBucket.objects.get(key="slide:k").expires_at == clock.now + 20.5


def test_a_repeated_check_in_one_process_is_one_update_statement(clock: FakeClock) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("reads the statements through sqlite3's trace hook")
    backend, _ = processes()
    backend.hit("one:k", limit=5, window=60, now=clock.now)
    pool = sqlpool._pools["default"]
    wrapper = pool.get_nowait()
    statements: list[str] = []
    wrapper.connection.set_trace_callback(statements.append)
    pool.put(wrapper)
    try:
        assert backend.hit("one:k", limit=5, window=60, now=clock.now + 1).count == 2
    finally:
        wrapper.connection.set_trace_callback(None)
    assert len(statements) == 1 and statements[0].startswith("UPDATE")
