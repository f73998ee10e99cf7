"""`simpletuner_backup_last_success_timestamp_seconds` (health category): when `manage.py backup`
last wrote a backup, from its backup.created audit entry, so any process reports it."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from pytest_django.fixtures import Settings as SettingsWrapper

from audit.models import AuditEntry
from cloudops import audit_events as events
from tests.metrics.scrape import Scraper

pytestmark = pytest.mark.django_db(transaction=True)

LAST_BACKUP = ("simpletuner_backup_last_success_timestamp_seconds", ())


@pytest.fixture
def backup_dir(tmp_path: Path, settings: SettingsWrapper) -> Path:
    settings.SIMPLETUNER_BACKUP_DIR = tmp_path / "backups"
    return settings.SIMPLETUNER_BACKUP_DIR


def test_nothing_is_reported_before_the_first_backup(scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
    enable("health")
    values = scrape()
    assert LAST_BACKUP not in values
    assert ("simpletuner_uptime_seconds", ()) in values


@pytest.mark.skipif(connection.vendor != "sqlite", reason="manage.py backup backs up the embedded SQLite database")
def test_a_backup_reports_when_it_was_written(scrape: Scraper, enable, backup_dir: Path) -> None:  # type: ignore[no-untyped-def]
    enable("jobs", "http", "health")  # the standard template's categories
    out = StringIO()
    call_command("backup", "--gzip", stdout=out)
    assert Path(out.getvalue().splitlines()[-1]).parent == backup_dir
    entry = AuditEntry.objects.get(event_type=events.BACKUP_CREATED)
    assert scrape()[LAST_BACKUP] == pytest.approx(entry.timestamp.timestamp())

    call_command("backup", stdout=StringIO())
    newest = AuditEntry.objects.filter(event_type=events.BACKUP_CREATED).order_by("-sequence").first()
    assert newest.sequence > entry.sequence
    assert scrape()[LAST_BACKUP] == pytest.approx(newest.timestamp.timestamp())


@pytest.mark.skipif(connection.vendor == "sqlite", reason="on SQLite manage.py backup makes a backup")
def test_on_a_database_server_the_refused_backup_reports_nothing(scrape: Scraper, enable, backup_dir: Path) -> None:  # type: ignore[no-untyped-def]
    enable("health")
    with pytest.raises(CommandError) as refused:
        call_command("backup", stdout=StringIO())
    assert refused.value.returncode == 2
    assert LAST_BACKUP not in scrape()
    assert not AuditEntry.objects.filter(event_type=events.BACKUP_CREATED).exists()
