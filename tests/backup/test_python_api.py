"""The documented import, `from providers.store import JobStore`, keeps working after the move
to cloudops.backup."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import cloudops.backup
from tests.backup.conftest import job_ids_in, sqlite_only


def test_it_reexports_exactly_the_documented_names_from_providers_store() -> None:
    import providers.store

    assert sorted(providers.store.__all__) == ["JobStore", "NotSQLiteError", "RestoreRefused"]
    assert providers.store.JobStore is cloudops.backup.JobStore
    assert providers.store.NotSQLiteError is cloudops.backup.NotSQLiteError
    assert providers.store.RestoreRefused is cloudops.backup.RestoreRefused


@sqlite_only
@pytest.mark.django_db(transaction=True)
def test_a_script_using_the_old_import_backs_up_lists_and_restores(
    backup_dir: Path, make_jobs: Callable[..., list[str]]
) -> None:
    from providers.store import JobStore

    kept = set(make_jobs(2))
    store = JobStore()

    path = store.backup()
    make_jobs(1, name="later")

    assert isinstance(path, Path) and job_ids_in(path) == kept
    assert store.list_backups() == [path]
    assert store.restore(path) is True
    assert store.get_database_info()["job_count"] == 2
