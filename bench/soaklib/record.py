"""What a soak run records: every request (endpoint, status, latency, when), the fault windows,
and the violations the clients notice on the way."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

# A request is "in a fault window" when it overlaps [fault start, recovered + GRACE]: nginx
# marks a dead upstream for fail_timeout (10 s), connections reopen, streams reconnect.
GRACE_SECONDS = 10.0


@dataclass
class Request:
    endpoint: str
    status: int  # 0: no HTTP answer (connection error, timeout)
    started: float
    ended: float

    @property
    def latency_ms(self) -> float:
        return (self.ended - self.started) * 1000


@dataclass
class Fault:
    kind: str
    detail: str
    started: float
    recovered: float | None = None

    def covers(self, started: float, ended: float) -> bool:
        end = (self.recovered if self.recovered is not None else time.monotonic()) + GRACE_SECONDS
        return started <= end and ended >= self.started


@dataclass
class Recorder:
    requests: list[Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)
    bytes_up: int = 0
    bytes_down: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, endpoint: str, status: int, started: float) -> None:
        with self.lock:
            self.requests.append(Request(endpoint, status, started, time.monotonic()))

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)
        print(f"VIOLATION: {text}", flush=True)

    def note(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.notes[what] += n

    def fault(self, kind: str, detail: str) -> Fault:
        fault = Fault(kind, detail, time.monotonic())
        with self.lock:
            self.faults.append(fault)
        print(f"fault: {kind} {detail}", flush=True)
        return fault

    def in_fault_window(self, r: Request) -> bool:
        return any(f.covers(r.started, r.ended) for f in self.faults)

    def server_errors(self) -> tuple[list[Request], list[Request]]:
        """5xx answers and requests without an answer: (inside fault windows, outside)."""
        failed = [r for r in self.requests if r.status >= 500 or r.status == 0]
        inside = [r for r in failed if self.in_fault_window(r)]
        outside = [r for r in failed if not self.in_fault_window(r)]
        return inside, outside

    def latencies(self) -> dict[str, tuple[int, float, float]]:
        """endpoint -> (count, p50 ms, p99 ms), answered requests only."""
        by: dict[str, list[float]] = defaultdict(list)
        for r in self.requests:
            if r.status:
                by[r.endpoint].append(r.latency_ms)
        out = {}
        for endpoint, values in sorted(by.items()):
            values.sort()
            out[endpoint] = (len(values), _pct(values, 0.50), _pct(values, 0.99))
        return out


def _pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
