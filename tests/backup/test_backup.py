from __future__ import annotations

import gzip
import hashlib
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEntry
from cloudops import audit_events as events
from cloudops.backup import JobStore, StoreError, create_backup
from providers.models import Job
from tests.backup.conftest import job_ids_in, live_db, sqlite_only, sqlite_rows

pytestmark = [sqlite_only, pytest.mark.django_db(transaction=True)]

T0 = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def run_backup(*args: str) -> list[str]:
    out = StringIO()
    call_command("backup", *args, stdout=out)
    return out.getvalue().splitlines()


def test_it_writes_a_timestamped_backup_to_the_backups_dir_and_prints_its_path_alone_last(
    backup_dir: Path, make_jobs: Callable[..., list[str]]
) -> None:
    ids = make_jobs(3)

    lines = run_backup()

    path = Path(lines[-1])
    assert path.parent == backup_dir
    assert path.name.startswith("jobs_backup_") and path.name.endswith(".db")
    datetime.strptime(path.name.removeprefix("jobs_backup_").removesuffix(".db"), "%Y%m%d_%H%M%S")
    assert job_ids_in(path) == set(ids)
    assert "3 jobs" in lines[-2]


def test_the_backup_is_one_private_standalone_sqlite_file(
    backup_dir: Path, make_jobs: Callable[..., list[str]]
) -> None:
    make_jobs(2)

    path = JobStore().backup()

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700
    assert sqlite_rows(path, "PRAGMA integrity_check") == [("ok",)]
    # Rollback-journal mode: reading it creates no -wal/-shm beside it; nothing else was left.
    assert sqlite_rows(path, "PRAGMA journal_mode") == [("delete",)]
    assert sorted(p.name for p in backup_dir.iterdir()) == [path.name]


def test_it_backs_up_to_a_named_file_or_into_a_directory(
    tmp_path: Path, backup_dir: Path, make_jobs: Callable[..., list[str]]
) -> None:
    ids = set(make_jobs(2))
    custom = tmp_path / "elsewhere" / "custom_backup.db"
    directory = tmp_path / "dir"
    directory.mkdir()

    named = JobStore().backup(custom)
    (into_dir,) = (Path(run_backup(str(directory))[-1]),)

    assert named == custom and job_ids_in(custom) == ids
    assert into_dir.parent == directory and into_dir.name.startswith("jobs_backup_")
    assert job_ids_in(into_dir) == ids
    assert not backup_dir.exists()


def test_a_named_backup_replaces_the_file_there_only_once_complete(
    tmp_path: Path, make_jobs: Callable[..., list[str]]
) -> None:
    target = tmp_path / "latest.db"
    make_jobs(1)
    JobStore().backup(target)
    make_jobs(1, name="second")

    JobStore().backup(target)

    assert len(job_ids_in(target)) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["latest.db"]


def test_gzip_writes_a_db_gz_holding_the_database(backup_dir: Path, make_jobs: Callable[..., list[str]]) -> None:
    ids = set(make_jobs(4))

    path = Path(run_backup("--gzip")[-1])

    assert path.name.endswith(".db.gz") and path.parent == backup_dir
    plain = backup_dir / "plain.db"
    plain.write_bytes(gzip.decompress(path.read_bytes()))
    assert job_ids_in(plain) == ids
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_path_ending_in_gz_is_compressed_and_gzip_adds_the_suffix(
    tmp_path: Path, make_jobs: Callable[..., list[str]]
) -> None:
    make_jobs(1)

    implied = JobStore().backup(tmp_path / "a.db.gz")
    added = JobStore().backup(tmp_path / "b.db", gzip=True)

    assert implied == tmp_path / "a.db.gz" and implied.read_bytes()[:2] == b"\x1f\x8b"
    assert added == tmp_path / "b.db.gz" and added.read_bytes()[:2] == b"\x1f\x8b"
    assert not (tmp_path / "b.db").exists()


def test_two_backups_in_the_same_second_get_distinct_names(
    backup_dir: Path, make_jobs: Callable[..., list[str]]
) -> None:
    make_jobs(1)
    store = JobStore(clock=lambda: T0)

    first, second, third = store.backup(), store.backup(), store.backup(gzip=True)

    assert first.name == "jobs_backup_20240115_103000.db"
    assert second.name == "jobs_backup_20240115_103000_2.db"
    assert third.name == "jobs_backup_20240115_103000.db.gz"
    assert sorted(store.list_backups()) == sorted([first, second, third])


def test_it_records_backup_created_in_the_audit_trail(backup_dir: Path, make_jobs: Callable[..., list[str]]) -> None:
    make_jobs(2)

    result = create_backup(JobStore(), gzip=True)

    entry = AuditEntry.objects.order_by("-sequence").first()
    assert entry is not None and entry.event_type == events.BACKUP_CREATED
    assert (entry.target_type, entry.action) == ("database", "backup")
    assert entry.details["path"] == str(result.path)
    assert entry.details["sha256"] == hashlib.sha256(result.path.read_bytes()).hexdigest() == result.sha256
    assert entry.details["compressed"] is True and entry.details["jobs"] == 2
    assert entry.details["os_user"] and entry.details["pid"] == os.getpid()
    assert result.audit_error is None


def test_the_backup_is_kept_when_its_audit_entry_cannot_be_written(
    backup_dir: Path, make_jobs: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_jobs(1)
    JobStore().backup()  # the chain is signed with TEST_KEY
    monkeypatch.setenv("SIMPLETUNER_AUDIT_KEY", "another key entirely " + "z" * 32)
    err = StringIO()

    out = StringIO()
    call_command("backup", stdout=out, stderr=err)

    path = Path(out.getvalue().splitlines()[-1])
    assert path.exists() and len(job_ids_in(path)) == 1
    assert "audit entry failed" in err.getvalue()


def _aged(path: Path, days: float) -> Path:
    when = (datetime.now(UTC) - timedelta(days=days)).timestamp()
    os.utime(path, (when, when))
    return path


def test_keep_deletes_all_but_the_newest_n_backups_and_nothing_else(
    backup_dir: Path, make_jobs: Callable[..., list[str]]
) -> None:
    make_jobs(1)
    old = [JobStore(clock=lambda d=d: T0 + timedelta(days=d)).backup(gzip=d % 2 == 0) for d in range(4)]
    safety = backup_dir / "jobs_pre_restore_20200101_000000.db"
    other = backup_dir / "handmade.db"
    safety.write_bytes(b"x")
    other.write_bytes(b"y")

    lines = run_backup("--keep", "3")

    newest = Path(lines[-1])
    assert sorted(p.name for p in backup_dir.iterdir()) == sorted(
        [newest.name, old[3].name, old[2].name, safety.name, other.name]
    )
    assert f"Removed old backup {old[0]}" in lines and f"Removed old backup {old[1]}" in lines


def test_retention_days_deletes_backups_older_than_find_mtime_would(
    backup_dir: Path, make_jobs: Callable[..., list[str]]
) -> None:
    make_jobs(1)
    store = JobStore()
    # find -mtime +30 deletes files whose age in whole days is above 30 (31 days and more).
    ancient = _aged(store.backup(), 45)
    day_31 = _aged(store.backup(), 31.01)
    day_30 = _aged(store.backup(), 30.9)
    safety = backup_dir / "jobs_pre_restore_20200101_000000.db"
    safety.write_bytes(b"x")
    _aged(safety, 400)

    lines = run_backup("--retention-days", "30")

    assert not ancient.exists() and not day_31.exists()
    assert day_30.exists() and safety.exists() and Path(lines[-1]).exists()


def test_prune_backups_is_the_retention_helper_for_cron(backup_dir: Path, make_jobs: Callable[..., list[str]]) -> None:
    make_jobs(1)
    store = JobStore()
    a, b, c = (_aged(store.backup(), days) for days in (50, 40, 1))

    removed = store.prune_backups(older_than_days=30)
    kept = store.prune_backups(keep=5)

    assert sorted(removed) == sorted([a, b]) and kept == []
    assert store.list_backups() == [c]


@pytest.mark.parametrize(("args", "message"), [(["--keep", "0"], "--keep must be at least 1")])
def test_bad_retention_arguments_are_refused(backup_dir: Path, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("backup", *args, stdout=StringIO())
    assert not backup_dir.exists()


def test_keep_below_one_is_refused_by_the_python_api(backup_dir: Path) -> None:
    with pytest.raises(StoreError, match="keep must be at least 1"):
        JobStore().backup(keep=0)


def test_retention_that_would_delete_every_backup_is_refused_by_the_python_api(backup_dir: Path) -> None:
    store = JobStore()
    first = store.backup()
    with pytest.raises(StoreError, match="retention days must not be negative"):
        store.backup(retention_days=-1)
    for retention in ({"keep": 0}, {"older_than_days": -1}):
        with pytest.raises(StoreError):
            store.prune_backups(**retention)
    assert store.list_backups() == [first]


def test_the_guides_python_example_works(backup_dir: Path, tmp_path: Path, make_jobs: Callable[..., list[str]]) -> None:
    make_jobs(2)
    store = JobStore()

    backup_path = store.backup()
    custom = store.backup(str(tmp_path / "custom_backup.db"))
    backups = store.list_backups()
    info = store.get_database_info()

    assert backup_path.exists() and custom.exists()
    assert backups == [backup_path]
    assert [f"{b.name}: {b.stat().st_size / 1024:.1f} KB" for b in backups][0].startswith("jobs_backup_")
    assert info["job_count"] == 2 and info["size_mb"] > 0
    assert info["path"] == str(store.db_path)


def test_a_backup_removes_what_killed_backups_left_a_day_ago_but_not_a_running_ones_file(
    backup_dir: Path, make_jobs: Callable[..., list[str]]
) -> None:
    make_jobs(1)
    backup_dir.mkdir()
    stale = backup_dir / ".jobs_backup.db.tmp-0badc0de"
    running = backup_dir / ".jobs_backup.db.gz.tmp-0000beef"
    stale.write_bytes(b"half a backup")
    running.write_bytes(b"a backup being written right now")
    _aged(stale, 2)

    made = JobStore().backup()

    assert not stale.exists() and running.exists() and made.exists()


@pytest.mark.parametrize("suffix", ["", "-wal"])
def test_a_backup_path_naming_the_live_database_is_refused(
    suffix: str, backup_dir: Path, make_jobs: Callable[..., list[str]]
) -> None:
    ids = set(make_jobs(2))
    live = live_db()
    target = live.with_name(live.name + suffix)

    with pytest.raises(CommandError, match="is the live database"):
        call_command("backup", str(target), stdout=StringIO())

    assert set(Job.objects.values_list("pk", flat=True)) == ids
    assert sqlite_rows(live, "PRAGMA integrity_check") == [("ok",)]
    assert not list(live.parent.glob(".jobs_backup*"))
