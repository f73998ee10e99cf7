from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.migrations.loader import MigrationLoader

from audit.services import audit_record
from cloudops import audit_events as events
from cloudops.backup import JobStore
from tests.backup.conftest import live_db, sqlite_only

pytestmark = [sqlite_only, pytest.mark.django_db(transaction=True)]

T0 = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def test_list_backups_shows_name_size_and_time_newest_first(
    backup_dir: Path, make_jobs: Callable[..., list[str]]
) -> None:
    make_jobs(1)
    older = JobStore(clock=lambda: T0).backup()
    newer = JobStore(clock=lambda: T0 + timedelta(hours=1)).backup(gzip=True)
    os.utime(older, (T0.timestamp(), T0.timestamp()))
    (backup_dir / ".jobs_backup.db.tmp-1234abcd").write_bytes(b"an interrupted backup")
    (backup_dir / "notes.txt").write_text("not a backup")

    lines = run("list_backups").splitlines()

    assert lines[0].split() == ["name", "size", "modified", "(UTC)"]
    assert [line.split()[0] for line in lines[1:-1]] == [newer.name, older.name]
    assert lines[2].endswith("2024-01-15 10:30:00")
    assert " KB" in lines[1]
    assert lines[-1] == f"2 backup(s) in {backup_dir}"


def test_list_backups_reads_another_directory_and_speaks_json(
    backup_dir: Path, tmp_path: Path, make_jobs: Callable[..., list[str]]
) -> None:
    make_jobs(1)
    elsewhere = tmp_path / "offsite"
    made = JobStore().backup(elsewhere / "jobs_backup_20240101_000000.db.gz")

    document = json.loads(run("list_backups", "--dir", str(elsewhere), "--json"))

    assert document["directory"] == str(elsewhere)
    assert document["backups"] == [
        {
            "name": made.name,
            "path": str(made),
            "size_bytes": made.stat().st_size,
            "modified": datetime.fromtimestamp(made.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M:%S"),
        }
    ]


def test_list_backups_says_when_there_are_none(backup_dir: Path) -> None:
    assert run("list_backups").strip() == f"No backups in {backup_dir}"


def test_dbinfo_reports_size_wal_counts_schema_and_backups(
    backup_dir: Path, make_jobs: Callable[..., list[str]]
) -> None:
    make_jobs(3)
    audit_record(event_type=events.JOB_SUBMITTED)
    backup = JobStore().backup()

    info = json.loads(run("dbinfo", "--json"))
    text = run("dbinfo")

    db = live_db()
    assert info["path"] == str(db) and info["exists"] is True
    assert info["size_bytes"] == db.stat().st_size and info["size_mb"] == round(db.stat().st_size / 2**20, 2)
    wal = db.with_name(db.name + "-wal")
    assert info["wal_path"] == str(wal)
    assert info["wal_size_bytes"] == (wal.stat().st_size if wal.exists() else 0)
    assert info["journal_mode"] == "wal" and info["page_size"] == 4096
    assert info["job_count"] == 3 and info["jobs_by_status"] == {"pending": 3}
    assert info["audit_count"] == 2  # job.submitted and backup.created
    assert info["schema_current"] is True and info["pending_migrations"] == []
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    for app in ("providers", "audit"):
        [(_, leaf)] = graph.leaf_nodes(app)
        assert info["schema_version"][app] == leaf
    assert info["last_backup"] == str(backup) and info["backup_count"] == 1
    assert info["server_pids"] == []
    assert f"path:           {db}" in text
    assert "job_count:      3  (3 pending)" in text
    assert "(current)" in text and f"last_backup:    {backup}" in text


def test_the_last_backup_is_never_a_restores_safety_copy(backup_dir: Path, make_jobs: Callable[..., list[str]]) -> None:
    make_jobs(1)
    backup = JobStore().backup()
    JobStore().restore(backup)

    info = JobStore().get_database_info()

    assert info["backup_count"] == 2
    assert info["last_backup"] == str(backup)
