from __future__ import annotations

import gzip
import hashlib
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import transaction

from audit.models import AuditEntry, AuditHead
from audit.services import audit_record
from cloudops import audit_events as events
from cloudops.backup import JobStore, RestoreRefused, restore_backup
from cloudops.models import ApiKey
from providers.models import Job
from tests.backup.conftest import TEST_KEY, db_state, job_ids_in, live_db, sqlite_only, sqlite_rows
from tests.processes import ROOT, django_env

pytestmark = [sqlite_only, pytest.mark.django_db(transaction=True)]


def run_restore(*args: str) -> list[str]:
    out = StringIO()
    call_command("restore", *args, stdout=out)
    return out.getvalue().splitlines()


def audit_verifies() -> str:
    out = StringIO()
    call_command("audit_verify", stdout=out)  # raises CommandError when it does not verify
    return out.getvalue()


def test_a_restore_brings_back_the_backup_and_keeps_a_safety_copy_of_what_it_replaced(
    backup_dir: Path, make_jobs: Callable[..., list[str]]
) -> None:
    kept = set(make_jobs(3, name="before"))
    backup = JobStore().backup()
    later = set(make_jobs(2, name="after"))

    lines = run_restore(str(backup))

    assert set(Job.objects.values_list("pk", flat=True)) == kept
    (safety,) = backup_dir.glob("jobs_pre_restore_*.db")
    assert job_ids_in(safety) == kept | later
    assert f"Safety copy of the replaced database: {safety}" in lines
    assert lines[-1].startswith(f"Restored {live_db()} from {backup} (3 jobs")
    assert sqlite_rows(live_db(), "PRAGMA integrity_check") == [("ok",)]
    assert sqlite_rows(live_db(), "PRAGMA journal_mode") == [("wal",)]


def test_the_restored_chain_is_the_backups_chain_plus_backup_restored_and_verifies(
    backup_dir: Path, make_jobs: Callable[..., list[str]]
) -> None:
    make_jobs(1)
    audit_record(event_type=events.JOB_SUBMITTED, target_type="job", target_id="x")
    backup = JobStore().backup()  # its chain: job.submitted (#1); backup.created (#2) is only in the live chain
    backup_sequences = [row[0] for row in sqlite_rows(backup, "SELECT sequence FROM audit_auditentry")]
    audit_record(event_type=events.JOB_CANCELLED, target_type="job", target_id="x")
    replaced = AuditHead.objects.get(pk=1)

    result = restore_backup(JobStore(), backup)

    entries = list(AuditEntry.objects.order_by("sequence"))
    assert [e.sequence for e in entries] == [*backup_sequences, max(backup_sequences) + 1]
    restored = entries[-1]
    assert restored.event_type == events.BACKUP_RESTORED
    assert (restored.target_type, restored.target_id, restored.action) == ("database", live_db().name, "restore")
    assert restored.details["source"] == str(backup)
    assert restored.details["source_sha256"] == hashlib.sha256(backup.read_bytes()).hexdigest()
    assert restored.details["safety_copy"] == str(result.safety_copy)
    assert restored.details["replaced_head"]["last_sequence"] == replaced.last_sequence == 3
    assert restored.details["replaced_head"]["last_mac"] == replaced.last_mac
    assert restored.details["forced"] is False
    assert "OK: 2 chained entries verified" in audit_verifies()


def test_the_python_api_returns_true(backup_dir: Path, make_jobs: Callable[..., list[str]]) -> None:
    kept = set(make_jobs(2))
    backup = JobStore().backup()
    make_jobs(1, name="later")

    success = JobStore().restore(Path(backup))

    assert success is True
    assert set(Job.objects.values_list("pk", flat=True)) == kept


def test_it_restores_a_gzipped_backup(backup_dir: Path, make_jobs: Callable[..., list[str]]) -> None:
    kept = set(make_jobs(2))
    backup = JobStore().backup(gzip=True)
    make_jobs(3, name="later")

    run_restore(str(backup))

    assert set(Job.objects.values_list("pk", flat=True)) == kept
    audit_verifies()


def test_a_backup_made_by_the_sqlite3_cli_in_wal_mode_is_restored(
    backup_dir: Path, tmp_path: Path, make_jobs: Callable[..., list[str]]
) -> None:
    kept = set(make_jobs(2))
    copy = tmp_path / "cli.db"
    with closing(sqlite3.connect(live_db())) as src, closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)  # what `sqlite3 jobs.db ".backup copy"` does: the copy keeps the WAL flag
    assert copy.read_bytes()[18:20] == b"\x02\x02"
    make_jobs(1, name="later")

    run_restore(str(copy))

    assert set(Job.objects.values_list("pk", flat=True)) == kept
    # The operator's file was only read: no -wal/-shm appeared beside it.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("cli")) == ["cli.db"]


@pytest.mark.slow
def test_an_older_backup_is_brought_up_to_date_before_it_is_swapped_in(
    backup_dir: Path, tmp_path: Path, make_jobs: Callable[..., list[str]]
) -> None:
    kept = set(make_jobs(2))
    older = tmp_path / "older.db"
    shutil.copyfile(JobStore().backup(), older)
    # A backup from before the API keys table existed: unapply that migration in the copy.
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "cloudops", "zero", "--noinput"],
        cwd=ROOT,
        env=django_env(DATABASE_URL=f"sqlite:///{older}"),
        check=True,
        capture_output=True,
    )
    assert ApiKey._meta.db_table not in {r[0] for r in sqlite_rows(older, "SELECT name FROM sqlite_master")}

    lines = run_restore(str(older))

    assert "Brought the backup up to date: applied cloudops.0001_initial" in lines
    assert set(Job.objects.values_list("pk", flat=True)) == kept
    assert ApiKey.objects.count() == 0  # the table exists again
    entry = AuditEntry.objects.order_by("-sequence").first()
    assert entry is not None and entry.details["migrations_applied"] == ["cloudops.0001_initial"]
    audit_verifies()


def test_a_backup_with_another_page_size_is_converted_and_restored(
    backup_dir: Path, tmp_path: Path, make_jobs: Callable[..., list[str]]
) -> None:
    kept = set(make_jobs(2))
    big_pages = tmp_path / "8k.db"
    shutil.copyfile(JobStore().backup(), big_pages)
    with closing(sqlite3.connect(big_pages)) as conn:
        conn.execute("PRAGMA page_size=8192")
        conn.execute("VACUUM")
    assert sqlite_rows(big_pages, "PRAGMA page_size") == [(8192,)]
    make_jobs(1, name="later")

    run_restore(str(big_pages))

    assert set(Job.objects.values_list("pk", flat=True)) == kept
    assert sqlite_rows(live_db(), "PRAGMA page_size") == [(4096,)]


def test_a_backup_signed_with_another_audit_key_is_refused_then_reanchored_on_request(
    backup_dir: Path, make_jobs: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = set(make_jobs(2))
    monkeypatch.setenv("SIMPLETUNER_AUDIT_KEY", "the key of another installation " + "k" * 32)
    audit_record(event_type=events.JOB_SUBMITTED)
    foreign = JobStore().backup()  # a chain signed with the other key
    monkeypatch.setenv("SIMPLETUNER_AUDIT_KEY", TEST_KEY)
    AuditEntry.objects.retention_delete(through_sequence=10**9)
    AuditHead.objects.all().delete()
    make_jobs(1, name="ours")
    before = db_state(backup_dir)

    with pytest.raises(RestoreRefused, match="signed with audit key id .* --reanchor-audit") as refused:
        JobStore().restore(foreign)

    assert refused.value.reason == "audit"
    assert db_state(backup_dir) == before
    lines = run_restore(str(foreign), "--reanchor-audit")
    assert "Re-anchored the audit chain: entries before the restore are no longer verified" in lines
    assert set(Job.objects.values_list("pk", flat=True)) == kept
    assert list(AuditEntry.objects.order_by("sequence").values_list("event_type", flat=True))[-2:] == [
        events.AUDIT_REANCHORED,
        events.BACKUP_RESTORED,
    ]
    assert AuditEntry.objects.order_by("-sequence").first().details["reanchored"] is True
    audit_verifies()


def test_restore_refuses_to_run_inside_a_transaction(backup_dir: Path, make_jobs: Callable[..., list[str]]) -> None:
    make_jobs(1)
    backup = JobStore().backup()

    with pytest.raises(RestoreRefused, match="inside a database transaction"), transaction.atomic():
        JobStore().restore(backup)


def test_the_gzip_of_a_backup_restores_like_the_backup(backup_dir: Path, make_jobs: Callable[..., list[str]]) -> None:
    kept = set(make_jobs(1))
    plain = JobStore().backup()
    zipped = plain.with_name("by_hand.db.gz")
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    make_jobs(2, name="later")

    assert JobStore().restore(zipped) is True

    assert set(Job.objects.values_list("pk", flat=True)) == kept
