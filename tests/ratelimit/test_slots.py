"""Slots (open-stream caps) on every state backend, with an injected clock."""

from __future__ import annotations

import json
import time

import pytest

from cloudops.ratelimit.backends.base import SlotDecision, StateBackend
from tests.processes import django_env, spawn_django, wait_all
from tests.ratelimit.conftest import FakeClock

pytestmark = pytest.mark.django_db

LEASE = 60.0


def take(
    backend: StateBackend, clock: FakeClock, owner: str, lease: str, per_owner: int = 2, total: int = 3
) -> SlotDecision:
    return backend.slot_acquire(
        pool="events",
        owner=owner,
        lease=lease,
        per_owner=per_owner,
        total=total,
        expires=clock.now + LEASE,
        now=clock.now,
    )


def test_it_admits_up_to_the_per_owner_cap_then_refuses_naming_it(backend: StateBackend, clock: FakeClock) -> None:
    assert take(backend, clock, "user:1", "a").allowed
    clock.advance(10)
    assert take(backend, clock, "user:1", "b").allowed
    refused = take(backend, clock, "user:1", "c")
    assert not refused.allowed and refused.full == "owner"
    # The oldest lease runs out 60 s after it was taken, 50 s from now.
    assert refused.retry_after == 50
    assert take(backend, clock, "user:2", "d").allowed  # another owner still has room


def test_it_refuses_past_the_pool_cap_whoever_asks(backend: StateBackend, clock: FakeClock) -> None:
    for owner, lease in (("user:1", "a"), ("user:2", "b"), ("user:3", "c")):
        assert take(backend, clock, owner, lease).allowed
    refused = take(backend, clock, "user:4", "d")
    assert not refused.allowed and refused.full == "pool"
    assert refused.retry_after == 60


def test_a_released_slot_is_free_at_once(backend: StateBackend, clock: FakeClock) -> None:
    assert take(backend, clock, "user:1", "a").allowed
    assert take(backend, clock, "user:1", "b").allowed
    backend.slot_release(pool="events", owner="user:1", lease="a")
    assert take(backend, clock, "user:1", "c").allowed


def test_a_lease_nobody_refreshes_runs_out(backend: StateBackend, clock: FakeClock) -> None:
    """What a process killed without cleanup leaves behind frees itself."""
    assert take(backend, clock, "user:1", "a").allowed
    assert take(backend, clock, "user:1", "b").allowed
    clock.advance(LEASE - 1)
    assert not take(backend, clock, "user:1", "c").allowed
    clock.advance(1)
    assert take(backend, clock, "user:1", "c").allowed


def test_a_refreshed_lease_is_kept(backend: StateBackend, clock: FakeClock) -> None:
    assert take(backend, clock, "user:1", "a").allowed
    assert take(backend, clock, "user:1", "b").allowed
    clock.advance(LEASE / 2)
    for lease in ("a", "b"):
        backend.slot_refresh(pool="events", owner="user:1", lease=lease, expires=clock.now + LEASE, now=clock.now)
    clock.advance(LEASE / 2 + 1)  # past the first expiry: both leases are still held
    refused = take(backend, clock, "user:1", "c")
    assert not refused.allowed and refused.retry_after == LEASE / 2 - 1


def test_a_refresh_after_the_lease_ran_out_takes_the_slot_again(backend: StateBackend, clock: FakeClock) -> None:
    assert take(backend, clock, "user:1", "a").allowed
    clock.advance(LEASE + 1)
    assert take(backend, clock, "user:2", "b").allowed  # drops the run-out lease "a"
    backend.slot_refresh(pool="events", owner="user:1", lease="a", expires=clock.now + LEASE, now=clock.now)
    assert take(backend, clock, "user:1", "c", per_owner=1).full == "owner"


WORKER = """
import json, os, secrets, threading, time
from django.db import connections
from cloudops.ratelimit.backends.base import BackendUnavailable
from cloudops.ratelimit.backends import state_backend

start = float(os.environ["RL_START"])
results = []

def work(n):
    time.sleep(max(0.0, start - time.time()))  # every thread of every process starts together
    now = time.time()
    try:
        decision = state_backend().slot_acquire(
            pool="race", owner=f"user:{n % 2}", lease=secrets.token_hex(8), per_owner=5, total=7,
            expires=now + 60, now=now,
        )
        results.append(decision.full or "admitted")
    except BackendUnavailable as exc:
        results.append(f"error: {exc}")
    finally:
        connections.close_all()

threads = [threading.Thread(target=work, args=(n,)) for n in range(10)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(results))
"""


@pytest.mark.slow
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["database", "redis"])
def test_racing_processes_never_take_more_slots_than_the_caps(kind: str, request: pytest.FixtureRequest) -> None:
    """3 processes x 10 threads, two owners (cap 5 each), a pool of 7: exactly 7 get in."""
    env = {"STATE_BACKEND": kind}
    if kind == "redis":
        env["STATE_BACKEND_URL"] = request.getfixturevalue("redis_url")
    start = str(time.time() + 4)  # after every interpreter has set Django up
    procs = [spawn_django(WORKER, env=django_env(RL_START=start, **env)) for _ in range(3)]
    results = [result for out in wait_all(procs) for result in json.loads(out)]
    assert [r for r in results if r.startswith("error")] == []
    assert results.count("admitted") == 7
    assert results.count("owner") + results.count("pool") == 23
