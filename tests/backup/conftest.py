"""Backup and restore tests: SQLite files, a fixed audit key, a private backups directory.

Tests that back up or restore the test database itself use `transaction=True` (a backup
sees committed rows only, and a restore closes the connection) and the `sqlite_only` mark:
on PostgreSQL/MariaDB runs they are reported as skipped with the reason, and
test_native_tools.py checks what the commands do there instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import connection
from pytest_django.fixtures import Settings as SettingsWrapper

from audit.models import AuditEntry, AuditHead
from providers.models import Job

TEST_KEY = "backup-tests-audit-key-" + "0123456789abcdef" * 3

sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="backup/restore of the embedded SQLite database; on this database test_native_tools.py covers the commands",
)


@pytest.fixture(autouse=True)
def audit_key_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SIMPLETUNER_AUDIT_KEY", TEST_KEY)
    return TEST_KEY


@pytest.fixture
def backup_dir(tmp_path: Path, settings: SettingsWrapper) -> Path:
    settings.SIMPLETUNER_BACKUP_DIR = tmp_path / "backups"
    return settings.SIMPLETUNER_BACKUP_DIR


@pytest.fixture
def make_jobs(alice: AbstractUser) -> Callable[..., list[str]]:
    def make(count: int, *, name: str = "job") -> list[str]:
        return [Job.objects.create(owner=alice, provider="local", name=f"{name}-{i}").pk for i in range(count)]

    return make


def live_db() -> Path:
    return Path(connection.settings_dict["NAME"]).absolute()


@dataclass(frozen=True)
class DbState:
    """What a refused restore must leave exactly as it was."""

    jobs: frozenset[str]
    audit_sequences: tuple[int, ...]
    head: tuple[object, ...] | None
    files: frozenset[str]


def db_state(*directories: Path) -> DbState:
    """The database's jobs and audit chain, and the names of files beside it and in `directories`."""
    head = AuditHead.objects.filter(pk=1).values_list("last_sequence", "last_mac", "mac").first()
    names = {p.name for p in live_db().parent.iterdir()}
    for directory in directories:
        if directory.exists():
            names |= {f"{directory.name}/{p.name}" for p in directory.iterdir()}
    return DbState(
        jobs=frozenset(Job.objects.values_list("pk", flat=True)),
        audit_sequences=tuple(AuditEntry.objects.order_by("sequence").values_list("sequence", flat=True)),
        head=head,
        # SQLite's own -wal/-shm come and go; the serving lock file is created by the first restore.
        files=frozenset(names - {live_db().name + suffix for suffix in ("-shm", "-wal", ".serving")}),
    )


def sqlite_rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


def job_ids_in(path: Path) -> set[str]:
    return {row[0] for row in sqlite_rows(path, "SELECT id FROM providers_job")}
