"""Backing up the live SQLite database: a consistent snapshot, optionally gzipped, audited."""

from __future__ import annotations

import getpass
import os
import socket
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from audit.chain import AuditChainError
from audit.services import audit_record
from cloudops import audit_events as events
from cloudops.auditing import Actor
from cloudops.backup.errors import StoreError
from cloudops.backup.files import (
    BACKUP_PREFIX,
    backup_filename,
    gzip_to,
    private_dir,
    prune_backup_files,
    publish,
    publish_new,
    remove_quietly,
    remove_stale_temps,
    sha256_of,
    temp_beside,
)
from cloudops.backup.sqlite import connect, count_rows, snapshot
from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.backup")


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size_bytes: int
    sha256: str
    compressed: bool
    jobs: int | None
    audit_entries: int | None
    # Older backups deleted by --keep / --retention-days after this one was written.
    removed: list[Path] = field(default_factory=list)
    # Set when the backup exists but its backup.created audit entry could not be written.
    audit_error: str | None = None


def database_backup(
    *,
    database: Path,
    backup_dir: Path,
    target: Path | None,
    gz: bool,
    keep: int | None,
    retention_days: int | None,
    now: datetime,
    timeout: float,
    actor: Actor | None,
) -> BackupResult:
    """Snapshot `database` to `target` (a file, or a directory for the default name)."""
    # Not has_sqlite_header: never open the live database file outside SQLite (see sqlite.py).
    if not database.is_file():
        raise StoreError(f"no SQLite database at {database}: run `python manage.py migrate` first")
    try:
        directory, final, gz = _destination(target, backup_dir, gz)
    except OSError as exc:
        raise StoreError(f"cannot write a backup to {target or backup_dir}: {exc}") from exc
    if final is not None and _is_live_file(final, database):
        raise StoreError(f"{final} is the live database (or its WAL): choose another backup path")
    remove_stale_temps(directory, now)
    tmp = temp_beside(directory / "jobs_backup.db")
    staged = [tmp]
    try:
        snapshot(database, tmp, timeout=timeout)
        jobs, audit_entries = _counts(tmp)
        if gz:
            staged.append(zipped := temp_beside(directory / "jobs_backup.db.gz"))
            gzip_to(tmp, zipped)
            tmp = zipped
        if final is not None:
            final = publish(tmp, final)
        else:
            final = publish_new(tmp, lambda attempt: backup_filename(BACKUP_PREFIX, now, gz=gz, attempt=attempt))
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"backup of {database} failed: {exc}") from exc
    finally:
        remove_quietly(*staged)
    removed = []
    if keep is not None or retention_days is not None:
        removed = prune_backup_files(directory, keep=keep, older_than_days=retention_days, now=now, spare=final)
    result = BackupResult(
        path=final,
        size_bytes=final.stat().st_size,
        sha256=sha256_of(final),
        compressed=gz,
        jobs=jobs,
        audit_entries=audit_entries,
        removed=removed,
    )
    return _audited(result, database=database, actor=actor)


def _destination(target: Path | None, backup_dir: Path, gz: bool) -> tuple[Path, Path | None, bool]:
    """(directory, explicit file name or None for the default name, compress?)."""
    if target is None:
        return private_dir(backup_dir), None, gz
    target = target.expanduser().absolute()
    if target.is_dir():
        return target, None, gz
    if target.name.endswith(".gz"):
        gz = True
    elif gz:
        target = target.with_name(target.name + ".gz")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return target.parent, target, gz


def _is_live_file(path: Path, database: Path) -> bool:
    live = {
        database.resolve(),
        *(database.resolve().with_name(database.name + s) for s in ("-wal", "-shm", "-journal")),
    }
    return path.resolve() in live


def _counts(path: Path) -> tuple[int | None, int | None]:
    with closing(connect(path)) as conn:
        return count_rows(conn, "providers_job"), count_rows(conn, "audit_auditentry")


def _audited(result: BackupResult, *, database: Path, actor: Actor | None) -> BackupResult:
    details = {
        "path": str(result.path),
        "size_bytes": result.size_bytes,
        "sha256": result.sha256,
        "compressed": result.compressed,
        "jobs": result.jobs,
        "removed": [str(path) for path in result.removed],
        **who_ran_it(),
    }
    try:
        audit_record(
            event_type=events.BACKUP_CREATED,
            actor=actor or Actor(),
            target_type="database",
            target_id=database.name,
            action="backup",
            details=details,
        )
    except AuditChainError as exc:
        # The backup is good and is kept: a backup matters most when something else is broken.
        logger.error("backup %s written, but its audit entry failed: %s", result.path, exc)
        return replace(result, audit_error=str(exc))
    logger.info("database backed up", extra={"path": str(result.path), "size_bytes": result.size_bytes})
    return result


def who_ran_it() -> dict[str, Any]:
    """The OS user, host and process behind a command (commands have no request actor)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"os_user": user, "host": socket.gethostname(), "pid": os.getpid()}
