"""Backup and restore never open the live database outside SQLite.

Closing any descriptor of a file drops every POSIX lock the process holds on it, including
the locks of the process's open SQLite connections; another process may then take itself
for the last user and delete the WAL under them (https://sqlite.org/howtocorrupt.html, 2.2).
A connection held open by another thread of this process must keep its lock through backup,
dbinfo and restore.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection

from cloudops.backup import JobStore
from providers.models import Job
from tests.backup.conftest import live_db, sqlite_only

pytestmark = [sqlite_only, pytest.mark.django_db(transaction=True)]


def this_process_locks(path: Path) -> list[str]:
    """This process's POSIX locks on `path`, from /proc/locks."""
    st = os.stat(path)
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return [
        line
        for line in Path("/proc/locks").read_text().splitlines()
        if " POSIX " in line and f" {os.getpid()} " in line and f" {device} " in line
    ]


class ConnectionHolder(threading.Thread):
    """Keeps a Django connection to the database open in its own thread, and can query it."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.ready, self.asked, self.done, self.stop = (threading.Event() for _ in range(4))
        self.count: int | None = None

    def run(self) -> None:
        try:
            self.count = Job.objects.count()
            self.ready.set()
            while not self.stop.is_set():
                if self.asked.wait(0.05):
                    self.asked.clear()
                    self.count = Job.objects.count()
                    self.done.set()
        finally:
            connection.close()

    def query(self) -> int | None:
        self.done.clear()
        self.asked.set()
        assert self.done.wait(30)
        return self.count


def test_a_connection_held_by_another_thread_keeps_its_lock_through_backup_dbinfo_and_restore(
    backup_dir: Path, make_jobs: Callable[..., list[str]]
) -> None:
    make_jobs(2)
    backup = JobStore().backup()
    make_jobs(3, name="later")
    holder = ConnectionHolder()
    holder.start()
    try:
        assert holder.ready.wait(30)
        assert this_process_locks(live_db()), "the held connection should lock the database file"

        JobStore().backup()
        assert this_process_locks(live_db())
        JobStore().get_database_info()
        assert this_process_locks(live_db())
        JobStore().restore(backup)

        assert this_process_locks(live_db())
        assert holder.query() == 2  # the held connection reads the restored database
    finally:
        holder.stop.set()
        holder.join(30)
