"""The state-backend contract, and the sliding-window rule every backend applies.

A backend stores, per key, the timestamps of the requests it admitted. A hit at `now` is
admitted only if fewer than `limit` admitted timestamps lie in (now - window, now]; a refused
hit is not recorded (it would otherwise lock a flooding client out forever). Each backend does
the read-decide-write of one hit atomically, so concurrent processes never admit more.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from typing import Protocol

# Keys starting with this are the limiter's own bookkeeping (e.g. the audit aggregation gate):
# not shown as clients in metrics or the admin.
INTERNAL_PREFIX = "~"


class BackendUnavailable(Exception):
    """The state backend could not be reached or failed mid-operation."""


@dataclass(frozen=True)
class Decision:
    """The outcome of one hit (or of a read, with `allowed` saying whether a hit would pass)."""

    allowed: bool
    count: int  # admitted requests in the window, including this one when allowed
    limit: int
    window: float
    # When the oldest counted request leaves the window (Unix time); `now + window` if none.
    reset_at: float
    now: float

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def reset_in(self) -> float:
        return max(0.0, self.reset_at - self.now)

    @property
    def retry_after(self) -> int:
        """Whole seconds until a refused client may try again (at least 1)."""
        return max(1, math.ceil(self.reset_at - self.now - 1e-9))


@dataclass(frozen=True)
class KeyState:
    """One key as the admin shows it."""

    key: str
    count: int
    expires_at: float


def decide(hits: list[float], *, now: float, limit: int, window: float, record: bool) -> tuple[Decision, list[float]]:
    """The pure rule: prune, decide, record. Returns the decision and the timestamps to keep.
    `hits` may be reordered: it is sorted in place (stored logs are nearly sorted already, so
    that is one pass in C), then cut at the window's start by bisection."""
    hits.sort()
    kept = hits[bisect_right(hits, now - window) :]
    allowed = len(kept) < limit
    if allowed and record:
        kept.append(now)
    reset_at = (kept[0] if kept else now) + window
    return Decision(allowed, len(kept), limit, window, reset_at, now), kept


@dataclass(frozen=True)
class SlotDecision:
    """The outcome of asking for a slot (cloudops/ratelimit/slots.py)."""

    allowed: bool
    # Which cap refused it: "owner" or "pool" ("" when allowed).
    full: str = ""
    # When the oldest lease of the full cap runs out unless its holder refreshes it (Unix time).
    retry_at: float = 0.0
    now: float = 0.0

    @property
    def retry_after(self) -> int:
        """Whole seconds until a slot of the full cap may come free (at least 1)."""
        return max(1, math.ceil(self.retry_at - self.now - 1e-9))


# Live leases under one cap: how many, and when the oldest runs out (None if there are none).
Held = tuple[int, float | None]


def slot_decide(*, owner: Held, pool: Held, per_owner: int, total: int, now: float) -> SlotDecision:
    """The pure slot rule over the live leases of the owner and of the whole pool."""
    for name, (count, oldest), cap in (("owner", owner, per_owner), ("pool", pool, total)):
        if count >= cap:
            return SlotDecision(False, name, oldest if oldest is not None else now, now)
    return SlotDecision(True, now=now)


class StateBackend(Protocol):
    """Where limiter state lives. Every method may raise BackendUnavailable."""

    name: str

    def hit(self, key: str, *, limit: int, window: float, now: float, record: bool = True) -> Decision:
        """Atomically apply the sliding-window rule to `key` (record=False only reads)."""
        ...

    def reset(self, key: str) -> bool:
        """Forget `key`; True if it existed."""
        ...

    def keys(self, *, now: float, limit: int = 200) -> list[KeyState]:
        """Client keys with live state, busiest first (at most `limit`)."""
        ...

    def violations_total(self) -> int: ...

    def tracked_clients(self, *, now: float) -> int: ...

    def prune(self, *, now: float) -> int:
        """Drop expired state; the number of keys removed."""
        ...

    def ping(self) -> str:
        """A one-line description if reachable; raises BackendUnavailable otherwise."""
        ...

    def slot_acquire(
        self, *, pool: str, owner: str, lease: str, per_owner: int, total: int, expires: float, now: float
    ) -> SlotDecision:
        """Atomically drop the pool's leases that ran out by `now`, then add `lease` (until
        `expires`) if `owner` holds fewer than `per_owner` and the pool fewer than `total`."""
        ...

    def slot_refresh(self, *, pool: str, owner: str, lease: str, expires: float, now: float) -> None:
        """Extend `lease` to `expires`, adding it again if it ran out and was dropped."""
        ...

    def slot_release(self, *, pool: str, owner: str, lease: str) -> None: ...
