"""A server process's periodic background work (job sync, metrics), one thread per job.

Each pass runs in its own correlation scope; a pass that raises is logged and the loop goes
on (the database or a provider may be back next time); the thread's database connection is
closed after every pass, so a dropped connection never outlives it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection

from cloudops.structured_logging import correlation_scope, get_logger

logger = get_logger("cloudops.background")


class PeriodicThread:
    """Runs `work` every `interval()` seconds in a daemon thread (`wait_first`: wait before
    the first pass instead of starting with one). Started at most once per process."""

    def __init__(self, name: str, work: Callable[[], None], interval: Callable[[], float], *, wait_first: bool) -> None:
        self.name = name
        self.work = work
        self.interval = interval
        self.wait_first = wait_first
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start the thread; False if it already runs."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return True

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        if self.wait_first and self._stop.wait(self.interval()):
            return
        while not self._stop.is_set():
            try:
                with correlation_scope():
                    self.work()
            except Exception:  # keep looping: the next pass may succeed
                logger.exception("background pass failed", extra={"thread": self.name})
            finally:
                connection.close()
            if self._stop.wait(self.interval()):
                return
