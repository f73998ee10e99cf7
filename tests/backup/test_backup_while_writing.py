"""A backup taken while writers keep committing is one consistent moment of the database.

Each writer transaction inserts a job and its `job.submitted` audit entry together, so a
torn copy would show a job without its entry (or the reverse) or a chain that does not
verify. The restored copy must hold exactly what the backup held.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.management import call_command
from django.db import connection, transaction

from audit.services import audit_record
from cloudops import audit_events as events
from cloudops.backup import JobStore
from providers.models import Job
from tests.backup.conftest import live_db, sqlite_only, sqlite_rows
from tests.processes import spawn_django, wait_all

pytestmark = [sqlite_only, pytest.mark.django_db(transaction=True)]


def write_jobs(owner_id: int, stop: threading.Event, written: list[str]) -> None:
    try:
        while not stop.is_set():
            with transaction.atomic():
                job = Job.objects.create(owner_id=owner_id, provider="local", name="writer")
                audit_record(event_type=events.JOB_SUBMITTED, target_type="job", target_id=job.pk)
            written.append(job.pk)
    finally:
        connection.close()


def wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the writer made no progress"
        time.sleep(0.01)


def assert_consistent(backup: Path) -> set[str]:
    """The backup verifies, and holds every writer job together with its audit entry."""
    assert sqlite_rows(backup, "PRAGMA integrity_check") == [("ok",)]
    jobs = {row[0] for row in sqlite_rows(backup, "SELECT id FROM providers_job WHERE name = 'writer'")}
    audited = {
        row[0]
        for row in sqlite_rows(
            backup, f"SELECT target_id FROM audit_auditentry WHERE event_type = '{events.JOB_SUBMITTED}'"
        )
    }
    assert jobs == audited
    return jobs


def restore_and_verify(backup: Path, expected: set[str]) -> None:
    JobStore().restore(backup)
    assert set(Job.objects.filter(name="writer").values_list("pk", flat=True)) == expected
    assert sqlite_rows(live_db(), "PRAGMA integrity_check") == [("ok",)]
    call_command("audit_verify", stdout=StringIO())  # raises if the restored chain does not verify


def test_a_backup_during_a_writer_thread_is_consistent_and_restores_exactly(
    backup_dir: Path, alice: AbstractUser
) -> None:
    stop, written = threading.Event(), []
    writer = threading.Thread(target=write_jobs, args=(alice.pk, stop, written))
    writer.start()
    try:
        wait_until(lambda: len(written) >= 30)
        before = len(written)
        backup = JobStore().backup()
        at_backup = len(written)
        wait_until(lambda: len(written) >= at_backup + 30)
    finally:
        stop.set()
        writer.join(timeout=60)

    in_backup = assert_consistent(backup)
    # Everything committed before the backup started is in it; the writer went on after it.
    assert set(written[:before]) <= in_backup < set(written)
    restore_and_verify(backup, in_backup)


WRITER = """
    import pathlib
    from django.db import transaction
    from cloudops import audit_events as events
    from audit.services import audit_record
    from providers.models import Job

    stop = pathlib.Path({stop!r})
    count = 0
    while not stop.exists():
        with transaction.atomic():
            job = Job.objects.create(owner_id={owner}, provider="local", name="writer")
            audit_record(event_type=events.JOB_SUBMITTED, target_type="job", target_id=job.pk)
        count += 1
    print(count)
"""


@pytest.mark.slow
def test_a_backup_during_a_writer_process_is_consistent_and_restores_exactly(
    backup_dir: Path, alice: AbstractUser, tmp_path: Path
) -> None:
    stop = tmp_path / "stop"
    procs = [spawn_django(WRITER.format(stop=str(stop), owner=alice.pk)) for _ in range(2)]
    try:
        wait_until(lambda: Job.objects.filter(name="writer").count() >= 30)
        backup = JobStore().backup(gzip=True)
        at_backup = Job.objects.filter(name="writer").count()
        wait_until(lambda: Job.objects.filter(name="writer").count() >= at_backup + 30)
    finally:
        stop.touch()
        counts = wait_all(procs)

    plain = tmp_path / "plain.db"
    call_command("backup", str(plain), stdout=StringIO())  # all writers stopped: the full set
    assert len(assert_consistent(plain)) == sum(int(c) for c in counts)
    staged = tmp_path / "from_gz.db"
    staged.write_bytes(gzip.decompress(backup.read_bytes()))
    in_backup = assert_consistent(staged)
    assert 30 <= len(in_backup) < sum(int(c) for c in counts)
    restore_and_verify(backup, in_backup)
