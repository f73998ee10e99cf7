"""A server process's periodic background work (job sync, metrics), one thread per job.

Each pass runs in its own correlation scope, and the thread's database connection is closed
after every pass, so a dropped connection never outlives it. A pass that raises anything is
logged and the loop goes on (the database or a provider may be back next time), waiting
longer after each failure in a row: the interval doubled per failure, at most
MAX_BACKOFF_SECONDS (or the interval, if longer). Nothing a pass or its logging raises ends
the thread.

Every loop a process starts is listed in `loops()`, with what health needs to know: whether
its thread is alive, when its last pass succeeded and how many failed since. The health
component `background` (check_background) reports a loop whose thread is gone as unhealthy
and one without a successful pass for LATE_AFTER_INTERVALS intervals as degraded.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection

from cloudops.structured_logging import correlation_scope, get_logger

logger = get_logger("simpletuner.cloud.background")

MAX_BACKOFF_SECONDS = 300.0
LATE_AFTER_INTERVALS = 3


@dataclass(frozen=True)
class LoopState:
    name: str
    alive: bool
    interval: float
    started: float | None  # time.time() of the thread's start
    last_success: float | None
    failures_in_a_row: int
    last_error: str

    def lateness(self, now: float) -> float:
        """Seconds past the point a successful pass was due (<= 0: on time)."""
        since = self.last_success or self.started or now
        return now - since - LATE_AFTER_INTERVALS * self.interval


class _Registry:
    """The loops started in this process (process plumbing, not shared state)."""

    loops: list[PeriodicThread] = []


def loops() -> list[LoopState]:
    """The loops started in this process and not stopped on purpose (shutdown, tests)."""
    return [loop.state() for loop in _Registry.loops if loop.started is not None and not loop.stopped]


class PeriodicThread:
    """Runs `work` every `interval()` seconds in a daemon thread (`wait_first`: wait before
    the first pass instead of starting with one). Started at most once per process."""

    def __init__(
        self, name: str, work: Callable[[], object], interval: Callable[[], float], *, wait_first: bool
    ) -> None:
        self.name = name
        self.work = work
        self.interval = interval
        self.wait_first = wait_first
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started: float | None = None
        self.last_success: float | None = None
        self.failures_in_a_row = 0
        self.last_error = ""
        _Registry.loops.append(self)

    def start(self) -> bool:
        """Start the thread; False if it already runs."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self.started = time.time()
            self._thread.start()
        return True

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def state(self) -> LoopState:
        alive = self._thread is not None and self._thread.is_alive()
        return LoopState(
            self.name, alive, self.interval(), self.started, self.last_success, self.failures_in_a_row, self.last_error
        )

    def next_wait(self) -> float:
        """The interval, doubled for each failed pass in a row, capped (see the module)."""
        interval = self.interval()
        if not self.failures_in_a_row:
            return interval
        return min(interval * 2**self.failures_in_a_row, max(interval, MAX_BACKOFF_SECONDS))

    def _run(self) -> None:
        if self.wait_first and self._stop.wait(self.interval()):
            return
        while not self._stop.is_set():
            self._pass()
            if self._stop.wait(self.next_wait()):
                return

    def _pass(self) -> None:
        try:
            with correlation_scope():
                self.work()
        except Exception as exc:  # keep looping: the next pass may succeed
            self.failures_in_a_row += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            self._log_failure()
        else:
            self.failures_in_a_row = 0
            self.last_success = time.time()
        finally:
            try:
                connection.close()
            except Exception:  # a broken connection must not end the loop either
                self.last_error = self.last_error or "closing the database connection failed"

    def _log_failure(self) -> None:
        # Logging itself may fail (a handler's disk is full): the loop must survive that too.
        with contextlib.suppress(Exception):
            logger.exception(
                "background pass failed",
                extra={"loop": self.name, "failures_in_a_row": self.failures_in_a_row, "retry_in_s": self.next_wait()},
            )
