"""In-process state: for tests and single-process experiments only (a system check warns).

Several server processes would each keep their own counts, multiplying every limit.
"""

from __future__ import annotations

import threading

from cloudops.ratelimit.backends.base import (
    INTERNAL_PREFIX,
    Decision,
    Held,
    KeyState,
    SlotDecision,
    decide,
    slot_decide,
)


class MemoryBackend:
    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, tuple[list[float], float]] = {}  # key -> (timestamps, window)
        self._violations = 0
        self._leases: dict[str, tuple[str, str, float]] = {}  # lease -> (pool, owner, expires)

    def hit(self, key: str, *, limit: int, window: float, now: float, record: bool = True) -> Decision:
        with self._lock:
            hits, _ = self._hits.get(key, ([], window))
            decision, kept = decide(hits, now=now, limit=limit, window=window, record=record)
            if record:
                self._hits[key] = (kept, window)
                self._violations += 0 if decision.allowed or key.startswith(INTERNAL_PREFIX) else 1
            return decision

    def reset(self, key: str) -> bool:
        with self._lock:
            return self._hits.pop(key, None) is not None

    def _live(self, now: float) -> list[KeyState]:
        return [
            KeyState(key, len([t for t in hits if t > now - window]), max(hits) + window)
            for key, (hits, window) in self._hits.items()
            if hits and max(hits) + window > now and not key.startswith(INTERNAL_PREFIX)
        ]

    def keys(self, *, now: float, limit: int = 200) -> list[KeyState]:
        with self._lock:
            return sorted(self._live(now), key=lambda s: -s.count)[:limit]

    def violations_total(self) -> int:
        return self._violations

    def tracked_clients(self, *, now: float) -> int:
        with self._lock:
            return len(self._live(now))

    def prune(self, *, now: float) -> int:
        with self._lock:
            dead = [k for k, (hits, window) in self._hits.items() if not hits or max(hits) + window <= now]
            for key in dead:
                del self._hits[key]
            return len(dead)

    def ping(self) -> str:
        return "In-process state (tests only: not shared between processes)"

    def _held(self, pool: str, owner: str | None) -> Held:
        expiries = [e for p, o, e in self._leases.values() if p == pool and owner in (None, o)]
        return len(expiries), min(expiries, default=None)

    def slot_acquire(
        self, *, pool: str, owner: str, lease: str, per_owner: int, total: int, expires: float, now: float
    ) -> SlotDecision:
        with self._lock:
            self._leases = {k: v for k, v in self._leases.items() if v[0] != pool or v[2] > now}
            decision = slot_decide(
                owner=self._held(pool, owner), pool=self._held(pool, None), per_owner=per_owner, total=total, now=now
            )
            if decision.allowed:
                self._leases[lease] = (pool, owner, expires)
            return decision

    def slot_refresh(self, *, pool: str, owner: str, lease: str, expires: float, now: float) -> None:
        with self._lock:
            self._leases[lease] = (pool, owner, expires)

    def slot_release(self, *, pool: str, owner: str, lease: str) -> None:
        with self._lock:
            self._leases.pop(lease, None)
