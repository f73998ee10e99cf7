"""Checks in memory, written behind, while a process is alone at its SQLite state database.

Why: on SQLite every check is a statement on the process's one state connection, and each
statement lets go of the GIL, so a request's worth of threads queue on that connection and
on each other: on a quiet machine that cost the cheapest request +60% of its CPU
(bench/README.md, issue 15 item 3), though SQLite itself takes ~15 µs. A process that is the
only one using the state (solo.py tells, with file locks) needs no database to decide: the
logs are all its own.

So while alone, a hit is decided on the key's log in memory, under a lock that no I/O ever
holds. Only a key's first hit reads its row (it may hold hits from before a restart). A
background thread writes the logs that changed, and the count of refusals, every
FLUSH_SECONDS in one transaction, each with the compare-and-set the one-statement check uses:
a row that changed anyway (a prune, a restore, another tool) is merged, never overwritten.
When another process knocks (or another backend object of this process joins), the thread
writes everything under the decision lock, and the process goes back to the database checks
of database.py; if the logs cannot be written, it keeps the seat and tries again each tick
(the newcomer waits, and reports an outage after solo.JOIN_SECONDS). A process that finds
itself alone again (checked at most every RETRY_SECONDS) first lets its own checks already
deciding in the database finish, then forgets the logs it saw meanwhile, which others may
have moved on.

What it costs: the admin, the metrics and `ratelimit_*` commands in this process see the logs
as of the last flush (they flush first); a process that dies loses at most FLUSH_SECONDS of
hits (a kill -9: clients get back that much of their budget). Limits stay exact across
processes: a second process takes its seat only after the first has written its logs.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from bisect import bisect_right
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError

from cloudops.ratelimit.backends.base import INTERNAL_PREFIX, Decision, decide
from cloudops.ratelimit.backends.solo import Presence, presence_for
from cloudops.ratelimit.backends.sqlpool import autocommit_cursor, transaction_cursor
from cloudops.structured_logging import get_logger

if TYPE_CHECKING:
    from cloudops.ratelimit.backends.database import DatabaseBackend

FLUSH_SECONDS = 0.05
RETRY_SECONDS = 1.0
DRAIN_SECONDS = 0.5
FAILURE_LOG_SECONDS = 10.0

logger = get_logger("simpletuner.cloud.ratelimit")

# A key's log as this process knows it: (what its row holds, None if no row; the hits).
Known = tuple[str | None, tuple[float, ...]]
# The logs a flush writes: key -> (what its row held, the hits, the window).
Batch = dict[str, tuple[str | None, tuple[float, ...], float]]


class WriteBehind:
    """The in-memory checks of one DatabaseBackend on SQLite (see the module docstring)."""

    def __init__(self, backend: DatabaseBackend, path: str | None) -> None:
        self.backend = backend
        self.path = path
        self.dirty: dict[str, float] = {}  # keys whose log the row does not hold yet -> window
        self.closed = False
        # How often the writer thread writes (and looks for a knock), and how often a process
        # that is not alone checks whether it is again; tests set their own.
        self.flush_seconds = FLUSH_SECONDS
        self.retry_seconds = RETRY_SECONDS
        self._reset_state()
        _instances.add(self)

    def _reset_state(self) -> None:
        self.lock = threading.Lock()  # held for decisions in memory: never across I/O, but in step_down
        self.flushing = threading.Lock()  # one flush at a time; taken before `lock`
        self.solo = False
        self.presence: Presence | None = None
        self.dirty.clear()
        self.violations = 0  # refusals not yet added to the database's counter
        self.retry_at = 0.0
        self.generation = 0  # moved by a reset: a row read before it is stale
        self.resets: dict[str, int] = {}  # key -> the generation of its reset, until flushed past
        self.outside = 0  # this process's checks deciding in the database right now
        self.draining = False  # sitting alone once `outside` is 0; new checks wait for it
        self.drained = threading.Condition(self.lock)
        self.active = threading.Event()
        self.thread: threading.Thread | None = None
        self.failed_at = 0.0

    # --- deciding ----------------------------------------------------------------------------

    def hit(self, key: str, *, limit: int, window: float, now: float, record: bool) -> Decision | None:
        """The decision in memory, or None when not alone: the caller then decides in the
        database and calls `done_outside()` after (until then this process does not sit alone)."""
        while True:
            if self.solo or self._sit_alone():
                decision = self._hit_alone(key, limit=limit, window=window, now=now, record=record)
                if decision is not None:
                    return decision
            with self.lock:
                if self._left_outside():
                    return None
            # else another thread sat alone meanwhile: decided in memory after all

    def _left_outside(self) -> bool:
        """Under the lock: count a check that will decide in the database, unless the process
        sat alone meanwhile (or is about to: then wait, and decide in memory)."""
        while self.draining:
            self.drained.wait()
        if self.solo:
            return False
        self.outside += 1
        return True

    def done_outside(self) -> None:
        """A check that decided in the database is over."""
        with self.lock:
            self.outside -= 1
            if not self.outside:
                self.drained.notify_all()

    def _hit_alone(self, key: str, *, limit: int, window: float, now: float, record: bool) -> Decision | None:
        known = self.backend._known
        generation = self.generation
        loaded = known.get(key)
        if loaded is None:
            loaded = self._load(key)
        with self.lock:
            if not self.solo:
                return None
            current = known.get(key)
            if current is None:
                if generation != self.generation:  # a reset raced the read
                    return None
                current = loaded
            decision, kept = decide(list(current[1]), now=now, limit=limit, window=window, record=record)
            if decision.allowed and record:
                self.dirty[key] = window
                self.backend._remember(key, current[0], kept)
            else:
                if record and not key.startswith(INTERNAL_PREFIX):
                    self.violations += 1
                if current is loaded:
                    self.backend._remember(key, current[0], list(current[1]))
        return decision

    def _load(self, key: str) -> Known:
        with autocommit_cursor(self.backend.alias) as cursor:
            cursor.execute(self.backend._sql["select"], [key])
            row = cursor.fetchone()
        if row is None:
            return None, ()
        from cloudops.ratelimit.backends.database import decode_hits

        return row[0], tuple(decode_hits(row[0]))

    # --- being alone -------------------------------------------------------------------------

    def _sit_alone(self) -> bool:
        """Join the state's presence (every check needs a seat), and sit alone if nobody else
        is there (tried at most every RETRY_SECONDS)."""
        if self.presence is None:
            presence = presence_for(self.path)
            presence.join(self)  # BackendUnavailable if a process alone does not move over
            self.presence = presence
        if time.monotonic() < self.retry_at:
            return False
        with self.lock:
            if self.solo:
                return True
            self.retry_at = time.monotonic() + self.retry_seconds
            if self.closed or not self.presence.sit_alone(self):
                return False
            if not self._drained() or not self.presence.holds_alone(self):
                self.presence.share(self)  # still busy, or a member of this process joined meanwhile
                return False
            # Logs seen while others were here may be behind theirs: read each again (but
            # keep those still to be written, which the flush merges with their rows).
            known = self.backend._known
            for key in [key for key in known if key not in self.dirty]:
                del known[key]
            self.solo = True
        self._start()
        return True

    def _drained(self) -> bool:
        """Under the lock: wait for this process's checks deciding in the database to finish.
        One still under way decides on a log that the checks in memory move on from, and
        writes over theirs (tests/ratelimit/test_write_behind.py: 33 admitted of 20 before
        this waited). New checks wait meanwhile (`_left_outside`). A check takes milliseconds;
        one that takes longer (waiting for a lock, say) leaves the process in the database's
        checks until the next try."""
        self.draining = True
        deadline = time.monotonic() + DRAIN_SECONDS
        try:
            while self.outside and time.monotonic() < deadline:
                self.drained.wait(DRAIN_SECONDS)
            return not self.outside
        finally:
            self.draining = False
            self.drained.notify_all()

    def step_down(self) -> bool:
        """Write every log and go back to the database's checks (someone else wants in).
        False if the logs could not be written: the seat is kept (the writer thread tries
        again every tick), since whoever came next would decide on rows without them."""
        with self.flushing, self.lock:
            if not self.solo:
                if self.presence is not None:
                    self.presence.share(self)  # sat down, but had not started deciding in memory
                return True
            try:
                batch, violations, generation = self._batch()
                if batch or violations:
                    self._settle(batch, self._write(batch, violations, generation), violations, generation)
            except DatabaseError as exc:
                self._log_failure(exc)  # at most every FAILURE_LOG_SECONDS: retried every tick
                return False
            self.solo = False
            self.retry_at = time.monotonic() + self.retry_seconds
            assert self.presence is not None
            self.presence.share(self)
            return True

    def close(self) -> None:
        """Write everything and leave (a backend that is replaced, or the process exiting)."""
        if not self.step_down():
            # Leaving anyway, as a process that dies does: what was not written is lost.
            logger.error("rate-limit state: leaving with logs not written (their clients get that budget back)")
        with self.lock:
            self.solo = False
            self.closed = True
        self.active.set()
        if self.presence is not None:
            self.presence.leave(self)
            self.presence = None

    # --- writing -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the logs that changed and the refusals counted since the last flush."""
        with self.flushing:
            with self.lock:
                batch, violations, generation = self._batch()
            if batch or violations:
                written = self._write(batch, violations, generation)
                with self.lock:
                    self._settle(batch, written, violations, generation)

    def _batch(self) -> tuple[Batch, int, int]:
        known = self.backend._known
        batch = {key: (*known[key], window) for key, window in self.dirty.items() if key in known}
        return batch, self.violations, self.generation

    def _write(self, batch: Batch, violations: int, generation: int) -> dict[str, Known]:
        from cloudops.ratelimit.backends.database import VIOLATIONS, encode_hits

        sql = self.backend._sql
        written: dict[str, Known] = {}
        with transaction_cursor(self.backend.alias) as cursor:
            for key, (stored, hits, window) in batch.items():
                log = encode_hits(list(hits))
                if stored is not None:
                    cursor.execute(sql["swap"], [log, window, hits[-1] + window, key, stored])
                    if cursor.rowcount == 1:
                        written[key] = (log, hits)
                        continue
                if self.resets.get(key, -1) > generation:
                    continue  # reset since this batch was taken: its old log must not come back
                written[key] = self._merge(cursor, key, hits, window)
            if violations:
                cursor.execute(sql["violations"], [VIOLATIONS, violations])
        return written

    def _merge(self, cursor: Any, key: str, hits: tuple[float, ...], window: float) -> Known:
        """A row that is not what this process last saw: its hits and ours, in the window."""
        from cloudops.ratelimit.backends.database import decode_hits, encode_hits

        stored = self.backend._locked_hits(cursor, key, window, hits[-1])
        merged = sorted(set(decode_hits(stored)) | set(hits))
        merged = merged[bisect_right(merged, merged[-1] - window) :]
        log = encode_hits(merged)
        cursor.execute(self.backend._sql["update"], [log, window, merged[-1] + window, key])
        return log, tuple(merged)

    def _settle(self, batch: Batch, written: dict[str, Known], violations: int, generation: int) -> None:
        """After a flush (under the decision lock): the rows hold what was written."""
        known = self.backend._known
        self.violations -= violations
        for key in [key for key, reset in self.resets.items() if reset <= generation]:
            del self.resets[key]  # every later batch was taken after that reset
        for key, (log, hits) in written.items():
            current = known.get(key)
            if current is None:  # reset meanwhile
                self.dirty.pop(key, None)
                continue
            sent = batch[key][1]
            now_hits = current[1]
            if hits != sent:  # merged: add what arrived since
                now_hits = tuple(sorted(set(hits) | set(now_hits)))
            known[key] = (log, now_hits)
            if now_hits == hits:
                self.dirty.pop(key, None)

    def forget(self, key: str) -> bool:
        """A reset: the key's memory goes, and a flush already under way does not bring its
        row back. Called before and after the row is deleted (a hit in between reads it).
        True if it held hits not yet written."""
        with self.lock:
            self.backend._known.pop(key, None)
            pending = self.dirty.pop(key, None) is not None
            self.generation += 1
            self.resets[key] = self.generation
        return pending

    # --- the writer thread ---------------------------------------------------------------------

    def _start(self) -> None:
        self.active.set()
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, name="ratelimit-writer", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while not self.closed:
            self.active.wait()
            time.sleep(self.flush_seconds)
            if self.closed:
                return
            if not self.solo:
                self.active.clear()
                if self.solo:  # sat alone again meanwhile
                    self.active.set()
                continue
            try:
                assert self.presence is not None
                if self.presence.knocked():
                    self.step_down()
                else:
                    self.flush()
            except Exception as exc:  # the thread must live on: retried next tick
                self._log_failure(exc)

    def _log_failure(self, exc: Exception) -> None:
        if time.monotonic() - self.failed_at >= FAILURE_LOG_SECONDS:
            self.failed_at = time.monotonic()
            logger.warning("rate-limit state: writing the logs failed (retrying): %s", exc)


_instances: weakref.WeakSet[WriteBehind] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for instance in list(_instances):
        try:
            instance.close()
        except Exception as exc:  # exiting: say so, never raise
            logger.error("rate-limit state: logs not written at exit: %s", exc)


def _after_fork() -> None:
    # The child holds none of its parent's locks or seats, and its logs are the parent's.
    for instance in list(_instances):
        instance.backend._known.clear()
        instance._reset_state()


os.register_at_fork(after_in_child=_after_fork)
