"""Every bad backup is refused before anything changes: same jobs, same chain, no new files."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from audit.services import audit_record
from cloudops import audit_events as events
from cloudops.backup import JobStore, RestoreRefused
from tests.backup.conftest import db_state, live_db, sqlite_only

pytestmark = [sqlite_only, pytest.mark.django_db(transaction=True)]


def _edit(good: Path, target: Path, *statements: str) -> Path:
    shutil.copyfile(good, target)
    with closing(sqlite3.connect(target)) as conn:
        conn.execute("PRAGMA foreign_keys=OFF")
        for sql in statements:
            conn.execute(sql)
        conn.commit()
    return target


def missing(good: Path, tmp: Path) -> Path:
    return tmp / "no_such_backup.db"


def text_file(good: Path, tmp: Path) -> Path:
    path = tmp / "notes.db"
    path.write_text("these are not the jobs you are looking for\n" * 100)
    return path


def empty_file(good: Path, tmp: Path) -> Path:
    path = tmp / "empty.db"
    path.touch()
    return path


def corrupt_pages(good: Path, tmp: Path) -> Path:
    # Keep the header (page 1) and overwrite the b-tree pages after it.
    path = tmp / "corrupt.db"
    data = bytearray(good.read_bytes())
    data[4096 * 2 : 4096 * 12] = bytes(range(256)) * (4096 * 10 // 256)
    path.write_bytes(bytes(data))
    return path


def truncated(good: Path, tmp: Path) -> Path:
    path = tmp / "truncated.db"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return path


def garbage_gzip(good: Path, tmp: Path) -> Path:
    path = tmp / "garbage.db.gz"
    path.write_bytes(b"\x1f\x8b" + b"definitely not deflate" * 50)
    return path


def truncated_gzip(good: Path, tmp: Path) -> Path:
    path = tmp / "cut.db.gz"
    path.write_bytes(gzip.compress(good.read_bytes())[:-200])
    return path


def gzip_of_text(good: Path, tmp: Path) -> Path:
    path = tmp / "text.db.gz"
    path.write_bytes(gzip.compress(b"hello " * 1000))
    return path


def foreign_sqlite(good: Path, tmp: Path) -> Path:
    path = tmp / "foreign.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, caption TEXT)")
        conn.execute("INSERT INTO photos (caption) VALUES ('a cat')")
        conn.commit()
    return path


def other_django_project(good: Path, tmp: Path) -> Path:
    path = tmp / "blog.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE django_migrations (id INTEGER PRIMARY KEY, app TEXT, name TEXT, applied TEXT)")
        conn.execute("INSERT INTO django_migrations (app, name, applied) VALUES ('blog', '0001_initial', '2024')")
        conn.execute("INSERT INTO django_migrations (app, name, applied) VALUES ('auth', '0001_initial', '2024')")
        conn.commit()
    return path


def newer_schema(good: Path, tmp: Path) -> Path:
    return _edit(
        good,
        tmp / "newer.db",
        "INSERT INTO django_migrations (app, name, applied) VALUES ('providers', '9999_from_the_future', '2030-01-01')",
    )


def missing_table(good: Path, tmp: Path) -> Path:
    return _edit(good, tmp / "no_jobs_table.db", "DROP TABLE providers_job")


def missing_column(good: Path, tmp: Path) -> Path:
    return _edit(good, tmp / "no_logs_column.db", "ALTER TABLE providers_job DROP COLUMN logs")


def orphan_rows(good: Path, tmp: Path) -> Path:
    return _edit(good, tmp / "orphans.db", "UPDATE providers_job SET owner_id = 999999")


def tampered_audit_head(good: Path, tmp: Path) -> Path:
    return _edit(good, tmp / "tampered.db", "UPDATE audit_audithead SET last_sequence = last_sequence + 5")


CASES: list[tuple[Callable[[Path, Path], Path], str, str]] = [
    (missing, "not_found", "does not exist"),
    (text_file, "not_sqlite", "is not a SQLite database"),
    (empty_file, "not_sqlite", "is not a SQLite database"),
    (corrupt_pages, "corrupt", "integrity_check|cannot be read"),
    (truncated, "corrupt", "integrity_check|cannot be read"),
    (garbage_gzip, "not_gzip", "is not a complete gzip file"),
    (truncated_gzip, "not_gzip", "is not a complete gzip file"),
    (gzip_of_text, "not_sqlite", "is not a SQLite database"),
    (foreign_sqlite, "foreign", "no django_migrations table: it is not a cloudops database"),
    (other_django_project, "foreign", "records no providers migrations: it is not a cloudops database"),
    (newer_schema, "newer", r"does not have \(providers.9999_from_the_future\).*newer cloudops"),
    (missing_table, "schema", "lacks the table providers_job"),
    (missing_column, "schema", "table providers_job lacks the columns logs"),
    (orphan_rows, "corrupt", "foreign keys point nowhere"),
    (tampered_audit_head, "audit", "head checkpoint does not verify"),
]


@pytest.mark.parametrize(("make_bad", "reason", "message"), CASES, ids=[c[0].__name__ for c in CASES])
def test_a_bad_backup_is_refused_and_nothing_changes(
    make_bad: Callable[[Path, Path], Path],
    reason: str,
    message: str,
    backup_dir: Path,
    tmp_path: Path,
    make_jobs: Callable[..., list[str]],
) -> None:
    make_jobs(3)
    audit_record(event_type=events.JOB_SUBMITTED)
    good = JobStore().backup(tmp_path / "good.db")
    bad = make_bad(good, tmp_path)
    source_digest = hashlib.sha256(bad.read_bytes()).hexdigest() if bad.exists() else None
    make_jobs(2, name="after")
    before = db_state(backup_dir, tmp_path)

    with pytest.raises(RestoreRefused, match=message) as refused:
        JobStore().restore(bad)

    assert refused.value.reason == reason
    assert str(refused.value).endswith("nothing was changed")
    assert db_state(backup_dir, tmp_path) == before
    assert not backup_dir.exists() or not list(backup_dir.glob("jobs_pre_restore_*"))
    if source_digest is not None:
        assert hashlib.sha256(bad.read_bytes()).hexdigest() == source_digest


def test_the_command_reports_a_refusal_and_exits_non_zero(
    backup_dir: Path, tmp_path: Path, make_jobs: Callable[..., list[str]]
) -> None:
    make_jobs(1)
    bad = text_file(tmp_path, tmp_path)
    before = db_state(backup_dir)

    with pytest.raises(CommandError, match=f"{bad} is not a SQLite database .*; nothing was changed") as failed:
        call_command("restore", str(bad), stdout=StringIO())

    assert failed.value.returncode == 1
    assert db_state(backup_dir) == before


def test_restoring_the_live_database_onto_itself_is_refused(
    backup_dir: Path, make_jobs: Callable[..., list[str]]
) -> None:
    make_jobs(1)
    before = db_state(backup_dir)

    with pytest.raises(RestoreRefused, match="is the live database itself") as refused:
        JobStore().restore(live_db())

    assert refused.value.reason == "same_file"
    assert db_state(backup_dir) == before
