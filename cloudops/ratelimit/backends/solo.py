"""Whether this process is the only one using a SQLite state database, told by file locks.

A process that is alone may keep the rate-limit logs in memory and write them behind
(writebehind.py); as soon as a second process wants the same state, the first must have
written everything and go back to checking in the database, or the second would decide on
logs that miss the first one's hits. POSIX record locks on a file next to the database say
who is there, without a database round trip, and the kernel drops them when a process dies:

- byte 0, the **seat**: every process using the state holds it shared; a process alone
  converts its shared lock to exclusive (atomic with fcntl, and it succeeds only if no other
  process holds the byte), which keeps any further process from taking its seat;
- byte 1, the **knock**: a process that finds the seat held exclusively holds this byte while
  it waits; the exclusive holder tests it every flush tick (writebehind.FLUSH_SECONDS), writes
  what it holds, and converts back to shared, which lets the newcomer sit down.

POSIX locks belong to a process, not to a file descriptor, so backend objects of one process
share one `Presence` per file, and a member is alone only if it is its process's only one.
An in-memory SQLite database is private to its process: only the in-process rule applies.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable
from typing import Protocol

from cloudops.ratelimit.backends.base import BackendUnavailable

SEAT, KNOCK = 0, 1
# How long a newcomer waits for a process holding the seat alone to write its logs and move
# over (it does within a flush tick; longer means it is stuck): then the check is an outage.
JOIN_SECONDS = 5.0
JOIN_POLL_SECONDS = 0.005


class Member(Protocol):
    def step_down(self) -> bool: ...


def lock_path(database_name: str) -> str | None:
    """The lock file beside a SQLite database file; None for an in-memory database."""
    name = str(database_name)
    if not name or name == ":memory:" or "mode=memory" in name or name.startswith("file:memorydb"):
        return None
    return name + ".ratelimit-lock"


class Presence:
    """This process's seat at one state database, shared by its backend objects."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.fd: int | None = None
        self.members: list[Member] = []
        self.alone: Member | None = None  # the member holding the seat exclusively
        self.lock = threading.Lock()

    def join(self, member: Member) -> None:
        """Take a seat (waiting for a process alone to move over); raises BackendUnavailable
        if it does not within JOIN_SECONDS."""
        with self.lock:
            if member in self.members:
                return
            if self.path is not None and self.fd is None:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    _take_seat(fd, self.path)
                except BaseException:
                    os.close(fd)
                    raise
                self.fd = fd
            alone = self.alone
            self.members.append(member)
        if alone is not None and not alone.step_down():  # in this process: it moves over at once
            self.leave(member)
            raise BackendUnavailable("another rate-limit backend of this process could not write its logs to hand over")

    def leave(self, member: Member) -> None:
        with self.lock:
            if member in self.members:
                self.members.remove(member)
            if self.alone is member:
                self.alone = None
            if not self.members and self.fd is not None:
                os.close(self.fd)  # drops every lock this process held on the file
                self.fd = None

    def sit_alone(self, member: Member) -> bool:
        """Hold the seat exclusively if `member` is the only one here, in and out of this process."""
        with self.lock:
            if self.members != [member]:
                return False
            if self.fd is not None and not _try_lock(self.fd, fcntl.LOCK_EX, SEAT):
                return False
            self.alone = member
            return True

    def holds_alone(self, member: Member) -> bool:
        """Whether `member` still holds the seat alone (a member that joined since made it share)."""
        with self.lock:
            return self.alone is member and self.members == [member]

    def knocked(self) -> bool:
        """Whether someone waits for the seat held alone (another process, or a new member here)."""
        with self.lock:
            if len(self.members) > 1:
                return True
            if self.fd is None:
                return False
            if not _try_lock(self.fd, fcntl.LOCK_EX, KNOCK):
                return True
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, KNOCK)
            return False

    def share(self, member: Member) -> None:
        """Give up sitting alone: the seat goes back to shared (atomic, never waits)."""
        with self.lock:
            if self.alone is member:
                self.alone = None
                if self.fd is not None:
                    fcntl.lockf(self.fd, fcntl.LOCK_SH, 1, SEAT)


def _try_lock(fd: int, kind: int, byte: int) -> bool:
    try:
        fcntl.lockf(fd, kind | fcntl.LOCK_NB, 1, byte)
    except OSError:
        return False
    return True


def _take_seat(fd: int, path: str, *, clock: Callable[[], float] = time.monotonic) -> None:
    if _try_lock(fd, fcntl.LOCK_SH, SEAT):
        return
    fcntl.lockf(fd, fcntl.LOCK_SH, 1, KNOCK)  # only ever held briefly by the one alone, testing it
    try:
        deadline = clock() + JOIN_SECONDS
        while not _try_lock(fd, fcntl.LOCK_SH, SEAT):
            if clock() > deadline:
                raise BackendUnavailable(
                    f"another process holding the rate-limit state alone ({path}) did not hand it over "
                    f"within {JOIN_SECONDS:g} s"
                )
            time.sleep(JOIN_POLL_SECONDS)
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, KNOCK)


_presences: dict[str | None, Presence] = {}
_registry_lock = threading.Lock()


def presence_for(path: str | None) -> Presence:
    with _registry_lock:
        presence = _presences.get(path)
        if presence is None:
            presence = _presences[path] = Presence(path)
        return presence


def _forget_after_fork() -> None:
    # A child holds none of its parent's POSIX locks: it starts with no seat anywhere.
    global _registry_lock
    _presences.clear()
    _registry_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
