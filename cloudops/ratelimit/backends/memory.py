"""In-process state: for tests and single-process experiments only (a system check warns).

Several server processes would each keep their own counts, multiplying every limit.
"""

from __future__ import annotations

import threading

from cloudops.ratelimit.backends.base import INTERNAL_PREFIX, Decision, KeyState, decide


class MemoryBackend:
    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, tuple[list[float], float]] = {}  # key -> (timestamps, window)
        self._violations = 0

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
