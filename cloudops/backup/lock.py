"""Which processes serve a SQLite database: the serving lock that `restore` checks.

Every server process (cloudops/asgi.py, imported only by the ASGI server) and
`manage.py sync_jobs --loop` open `<database>.serving` next to the database and hold a
shared flock(2) on it for their whole life: one system call at start-up, nothing per
request. A restore asks for the exclusive lock without waiting; the kernel grants it only
when no such process is alive, and drops a dead process's lock by itself (even after
SIGKILL), so a crashed server never leaves a stale lock behind. While a restore holds the
exclusive lock, a server that starts waits at start-up, before it serves anything, until
the restore is done.

flock locks are independent of the POSIX record locks SQLite itself uses, so this never
interferes with SQLite's locking. Like SQLite's own locks, they only see processes on
this host (a SQLite database must not be shared between hosts anyway).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.backup")

LOCK_SUFFIX = ".serving"

# This process's shared locks, by lock path. Per-process state on purpose: a flock belongs
# to the open file, so the descriptor must live exactly as long as the process serves.
_held: dict[Path, int] = {}


def serving_lock_path(database: Path) -> Path:
    return database.with_name(database.name + LOCK_SUFFIX)


def _open(path: Path) -> int:
    # Not inherited by child processes (local training jobs), which would keep the lock
    # alive after the server died.
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def hold_serving_lock(database: Path) -> Path:
    """Mark this process as serving `database` until it exits; waits while a restore runs."""
    path = serving_lock_path(database)
    if path in _held:
        return path
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        logger.warning("a restore of %s is in progress; waiting for it to finish before serving", database)
        fcntl.flock(fd, fcntl.LOCK_SH)
    _held[path] = fd
    return path


def release_serving_lock(database: Path) -> None:
    fd = _held.pop(serving_lock_path(database), None)
    if fd is not None:
        os.close(fd)


@dataclass
class ExclusiveLock:
    """The outcome of asking for the exclusive lock: `acquired`, else who holds it."""

    path: Path
    acquired: bool
    holders: list[int] = field(default_factory=list)


@contextmanager
def exclusive_serving_lock(database: Path) -> Iterator[ExclusiveLock]:
    """Try (without waiting) to become the only process using `database`; release after.

    A shared lock held by this very process does not count: it is released for the
    duration and taken again afterwards, so "refuse while *other* processes serve" holds
    even in a process that imported the ASGI module.
    """
    path = serving_lock_path(database)
    own = _held.get(path)
    if own is not None:
        fcntl.flock(own, fcntl.LOCK_UN)
    fd = _open(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            acquired = True
        except BlockingIOError:
            acquired = False
        yield ExclusiveLock(path=path, acquired=acquired, holders=[] if acquired else lock_holders(path))
    finally:
        os.close(fd)
        if own is not None:
            fcntl.flock(own, fcntl.LOCK_SH)


def _flocks(path: Path) -> list[tuple[bool, int]]:
    """(waiting, pid) for each flock on `path`, from /proc/locks (Linux); [] where unknown."""
    try:
        st = os.stat(path)
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    found = []
    for line in lines:
        # "1: FLOCK ADVISORY READ 1234 fd:01:5678 0 EOF"; a waiter has "->" after the number.
        parts = line.split()[1:]
        waiting = bool(parts) and parts[0] == "->"
        parts = parts[1:] if waiting else parts
        if len(parts) >= 5 and parts[0] == "FLOCK" and parts[4] == device and parts[3].isdigit():
            found.append((waiting, int(parts[3])))
    return found


def lock_holders(path: Path) -> list[int]:
    """Other processes holding a flock on `path` (the servers, or another restore)."""
    return sorted({pid for waiting, pid in _flocks(path) if not waiting} - {os.getpid()})


def lock_waiters(path: Path) -> list[int]:
    """Processes blocked waiting for a flock on `path` (a server starting during a restore)."""
    return sorted({pid for waiting, pid in _flocks(path) if waiting})
