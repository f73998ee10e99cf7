"""Slots: caps on long-lived requests open at once (event streams), per owner and per pool.

A rate limit counts requests in a window; an event stream is one request that stays open for
hours, so it is counted while it is open instead. `slot_acquire` admits it if its owner and the
whole pool are under their caps and records a lease; the stream refreshes the lease while it
runs (`slot_refresh`) and releases it when it ends (`slot_release`). Leases live in the rate
limiter's state backend (the database or Redis), so the caps hold across server processes, and
they run out: a process killed without cleanup (kill -9) frees its slots within one lease.

Accepted race: a stream whose refresh comes later than its lease (its process stalled that
long, or the backend was down) may lose the lease to the pool's next acquisition, and adds it
back on its next refresh; the pool then holds one more than its cap until a stream ends.
Ending the stream instead would punish its client for the server's stall.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from asgiref.sync import sync_to_async

from cloudops.ratelimit.backends import state_backend
from cloudops.ratelimit.backends.base import BackendUnavailable, SlotDecision, StateBackend
from cloudops.ratelimit.limiter import Clock, log_outage, wall_clock


@dataclass(frozen=True)
class Slot:
    """One request's place in `pool` (e.g. "events"), counted against `owner` (e.g. "user:42")."""

    pool: str
    owner: str
    lease: str = field(default_factory=lambda: secrets.token_hex(16))


async def _call(backend: StateBackend, method: str, **kwargs: Any) -> Any:
    native = getattr(backend, f"a{method}", None)
    if native is not None:  # Redis: on the event loop
        return await native(**kwargs)
    call = partial(getattr(backend, method), **kwargs)
    if backend.name == "memory":
        return call()
    # The database backend works on its own pooled connections (sqlpool), so any worker thread
    # will do; never the request's thread-sensitive one, which an open stream no longer has.
    return await sync_to_async(call, thread_sensitive=False)()


async def slot_acquire(
    slot: Slot, *, per_owner: int, total: int, lease_seconds: float, clock: Clock = wall_clock
) -> SlotDecision:
    """Take `slot` if its owner holds fewer than `per_owner` and its pool fewer than `total`.
    Raises BackendUnavailable (the caller chooses the fail mode)."""
    now = clock()
    return await _call(
        state_backend(),
        "slot_acquire",
        pool=slot.pool,
        owner=slot.owner,
        lease=slot.lease,
        per_owner=per_owner,
        total=total,
        expires=now + lease_seconds,
        now=now,
    )


async def slot_refresh(slot: Slot, *, lease_seconds: float, clock: Clock = wall_clock) -> None:
    """Extend the lease. A failure is logged: the stream goes on, and its lease runs out by
    itself if the backend stays down."""
    now = clock()
    try:
        await _call(
            state_backend(),
            "slot_refresh",
            pool=slot.pool,
            owner=slot.owner,
            lease=slot.lease,
            expires=now + lease_seconds,
            now=now,
        )
    except BackendUnavailable as exc:
        log_outage(exc, fail_open=True, where=f"slot refresh ({slot.pool})")


async def slot_release(slot: Slot) -> None:
    """Free the slot. A failure is logged: the lease runs out by itself."""
    try:
        await _call(state_backend(), "slot_release", pool=slot.pool, owner=slot.owner, lease=slot.lease)
    except BackendUnavailable as exc:
        log_outage(exc, fail_open=True, where=f"slot release ({slot.pool})")
