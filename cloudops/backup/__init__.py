"""The whole database as files: backup, restore, listing and information (JobStore).

    from cloudops.backup import JobStore

    store = JobStore()
    path = store.backup()                      # $SIMPLETUNER_BACKUP_DIR/jobs_backup_YYYYmmdd_HHMMSS.db
    path = store.backup("/backup/custom_backup.db")
    for b in store.list_backups(): ...
    info = store.get_database_info()           # size_mb, job_count, path, wal_size_mb, audit_count, ...
    store.restore(Path("/backup/jobs_backup_20240115_103000.db"))   # True, or raises RestoreRefused

A backup holds every table (jobs, the audit trail, API keys, rate-limit state), so it lives
with the project rather than in an app; `providers.store` re-exports the documented names for
scripts written against that import. The management commands `backup`, `list_backups`,
`dbinfo` and `restore` call these same methods. They work on the embedded SQLite database; on
PostgreSQL or MySQL every method raises NotSQLiteError whose message gives the `pg_dump` /
`mysqldump` command to use. A package rather than one module: lock, files, validation and
restore are separate concerns.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils import timezone

from cloudops.auditing import Actor
from cloudops.backup.backup import BackupResult, database_backup
from cloudops.backup.errors import NotSQLiteError, RestoreRefused, StoreError
from cloudops.backup.files import TIMESTAMP_FORMAT, check_retention, list_backup_files, prune_backup_files
from cloudops.backup.info import database_info
from cloudops.backup.lock import hold_serving_lock
from cloudops.backup.native import NativeTools, native_tools
from cloudops.backup.restore import RestoreResult, database_restore
from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.backup")

__all__ = [
    "BackupResult",
    "JobStore",
    "NativeTools",
    "NotSQLiteError",
    "RestoreRefused",
    "RestoreResult",
    "StoreError",
    "create_backup",
    "hold_serving_lock_for_default_database",
    "restore_backup",
]


class JobStore:
    """The database behind `using` (default: the server's), with backups in `backup_dir`.

    `backup_dir` defaults to settings.SIMPLETUNER_BACKUP_DIR; `clock` (returning an aware
    datetime) names backups and applies retention, so tests can fix the time.
    """

    def __init__(
        self,
        backup_dir: Path | str | None = None,
        *,
        using: str = "default",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.using = using
        self.backup_dir = Path(backup_dir).expanduser().absolute() if backup_dir else settings.SIMPLETUNER_BACKUP_DIR
        self.clock = clock or timezone.now

    # --- What database ---------------------------------------------------------------------

    @property
    def vendor(self) -> str:
        return connections[self.using].vendor

    def native_tools(self) -> NativeTools | None:
        """The pg_dump / mysqldump commands for a server database; None on SQLite."""
        if self.vendor == "sqlite":
            return None
        stamp = self.clock().strftime(TIMESTAMP_FORMAT)
        return native_tools(self.vendor, connections[self.using].settings_dict, stamp=stamp)

    @property
    def db_path(self) -> Path:
        """The SQLite file; raises NotSQLiteError (with the native commands) on other databases."""
        self._require_sqlite()
        name = str(connections[self.using].settings_dict["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            raise StoreError(f"the database {name!r} is not a file; there is nothing to back up")
        return Path(name).expanduser().absolute()

    def _require_sqlite(self) -> None:
        tools = self.native_tools()
        if tools is not None:
            raise NotSQLiteError(tools.explain())

    @property
    def timeout(self) -> float:
        """Seconds to wait for the database's write lock (its busy timeout)."""
        return float((connections[self.using].settings_dict.get("OPTIONS") or {}).get("timeout", 30.0))

    # --- Backups ---------------------------------------------------------------------------
    # One method per operation, answering what scripts need (a Path; True). The commands print
    # more (sizes, counts, what retention removed): they call create_backup / restore_backup,
    # the module's functions these methods are made of.

    def backup(
        self,
        path: Path | str | None = None,
        *,
        gzip: bool = False,
        keep: int | None = None,
        retention_days: int | None = None,
        actor: Actor | None = None,
    ) -> Path:
        """Back up to `path` (a file or a directory), or to the backups directory; returns the file."""
        return create_backup(self, path, gzip=gzip, keep=keep, retention_days=retention_days, actor=actor).path

    def list_backups(self, directory: Path | str | None = None) -> list[Path]:
        """`*.db` and `*.db.gz` files in the backups directory, newest first."""
        self._require_sqlite()
        return list_backup_files(Path(directory) if directory else self.backup_dir)

    def prune_backups(
        self, *, keep: int | None = None, older_than_days: int | None = None, directory: Path | str | None = None
    ) -> list[Path]:
        """Retention for cron: delete `jobs_backup_*` files beyond the newest `keep`, or
        modified more than `older_than_days` whole days ago (the rule of `find -mtime +N` in
        the README's cron script). Safety copies and other names are never deleted."""
        self._require_sqlite()
        return prune_backup_files(
            Path(directory) if directory else self.backup_dir,
            keep=keep,
            older_than_days=older_than_days,
            now=self.clock(),
        )

    # --- Information and restore -------------------------------------------------------------

    def get_database_info(self) -> dict[str, Any]:
        return database_info(database=self.db_path, backup_dir=self.backup_dir, using=self.using)

    def restore(
        self, path: Path | str, *, force: bool = False, reanchor_audit: bool = False, actor: Actor | None = None
    ) -> bool:
        """Replace the database with the backup at `path` (`.db` or `.db.gz`).

        Returns True once restored. A refusal raises RestoreRefused (with the reason) and
        leaves the database untouched. Refused while a server runs unless `force=True`.
        """
        restore_backup(self, path, force=force, reanchor_audit=reanchor_audit, actor=actor)
        return True


def create_backup(
    store: JobStore,
    path: Path | str | None = None,
    *,
    gzip: bool = False,
    keep: int | None = None,
    retention_days: int | None = None,
    actor: Actor | None = None,
) -> BackupResult:
    """`store.backup`, returning sizes, counts, checksum and what retention removed."""
    check_retention(keep=keep, older_than_days=retention_days)  # before anything is written
    return database_backup(
        database=store.db_path,
        backup_dir=store.backup_dir,
        target=Path(path) if path is not None else None,
        gz=gzip,
        keep=keep,
        retention_days=retention_days,
        now=store.clock(),
        timeout=store.timeout,
        actor=actor,
    )


def restore_backup(
    store: JobStore, path: Path | str, *, force: bool = False, reanchor_audit: bool = False, actor: Actor | None = None
) -> RestoreResult:
    """`store.restore`, returning the safety copy, counts and migrations applied."""
    return database_restore(
        database=store.db_path,
        backup_dir=store.backup_dir,
        source=Path(path),
        force=force,
        reanchor_audit=reanchor_audit,
        now=store.clock(),
        timeout=store.timeout,
        actor=actor,
        using=store.using,
    )


def hold_serving_lock_for_default_database() -> Path | None:
    """For server processes: mark this process as serving the SQLite database (see lock.py).

    Nothing to do on PostgreSQL/MySQL, where restore is the database's own business.
    """
    if connections["default"].vendor != "sqlite":
        return None
    try:
        return hold_serving_lock(JobStore().db_path)
    except StoreError:
        return None
    except OSError as exc:
        # Serving matters more than restore's safety net; the warning says what is lost.
        logger.warning("cannot take the serving lock (restore will not see this server): %s", exc)
        return None
