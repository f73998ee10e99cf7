"""Restoring the live SQLite database from a backup: validate, keep a safety copy, swap, audit.

1. Take the serving lock exclusively (cloudops/backup/lock.py): refused while a server
   process or `sync_jobs --loop` runs, unless forced.
2. Stage a private copy of the backup beside the database (gunzipped if it is a .gz), so
   the operator's file is never opened by SQLite or modified.
3. Validate the copy (cloudops/backup/validate.py). A backup from an older cloudops gets
   the missing migrations, applied to the copy by `manage.py migrate` in a subprocess,
   and is validated again; a newer or foreign one is refused.
4. Check that the configured audit key can extend the copy's audit chain.
5. Keep a safety copy of the current database in the backups directory.
6. Swap: write the copy into the live database in one SQLite transaction
   (cloudops/backup/sqlite.py), which is atomic and crash-safe.
7. Append `backup.restored` to the restored chain, still under the exclusive lock.

Every refusal happens before step 5, so it leaves the database and the backups directory
exactly as they were (the staged copy is removed).
"""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
import subprocess
import sys
import zlib
from contextlib import ExitStack, closing
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import connections

from audit.chain import AuditChainError
from audit.services import audit_reanchor, audit_record
from cloudops import audit_events as events
from cloudops.auditing import Actor
from cloudops.backup.backup import who_ran_it
from cloudops.backup.errors import RestoreRefused, StoreError
from cloudops.backup.files import (
    SAFETY_PREFIX,
    backup_filename,
    copy_hashing,
    fsync_file,
    is_gzip,
    private_dir,
    publish,
    publish_new,
    remove_quietly,
    temp_beside,
)
from cloudops.backup.lock import ExclusiveLock, exclusive_serving_lock, serving_lock_path
from cloudops.backup.sqlite import connect, convert_page_size, copy_into_live, is_database, page_size, snapshot
from cloudops.backup.validate import AuditCheck, Inspection, check_audit_head, inspect_copy
from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.backup")


@dataclass(frozen=True)
class RestoreResult:
    source: Path
    source_sha256: str
    database: Path
    # The database as it was before, in the backups directory (None: there was none).
    safety_copy: Path | None
    jobs: int | None
    audit_entries: int | None
    migrations_applied: tuple[str, ...] = ()
    forced: bool = False
    # Processes that held the serving lock when --force went ahead anyway.
    server_pids: list[int] = field(default_factory=list)
    reanchored: bool = False
    audit_error: str | None = None


def database_restore(
    *,
    database: Path,
    backup_dir: Path,
    source: Path,
    force: bool,
    reanchor_audit: bool,
    now: datetime,
    timeout: float,
    actor: Actor | None,
    using: str,
) -> RestoreResult:
    source = _checked_source(source, database, using)
    with ExitStack() as stack:
        lock = _take_lock(stack, database)
        if not lock.acquired and not force:
            raise RestoreRefused("server_running", _server_running(database, lock))
        if lock.acquired:
            _remove_stale_copies(database)
        staged = temp_beside(database.with_name(f"{database.name}.restore"))
        try:
            valid = _validated_copy(source, staged, reanchor_audit)
            _check_swappable(database, lock)
            _match_page_size(staged, database)
            safety = _safety_copy(database, backup_dir, now, timeout)
            previous = _previous_head(database)
            # This thread's connection must not hold the old database open across the swap.
            connections[using].close()
            _swap_in(staged, database, lock, timeout)
        finally:
            remove_quietly(staged)
        result = RestoreResult(
            source=source,
            source_sha256=valid.source_sha256,
            database=database,
            safety_copy=safety,
            jobs=valid.inspection.jobs,
            audit_entries=valid.inspection.audit_entries,
            migrations_applied=valid.migrated,
            forced=not lock.acquired,
            server_pids=lock.holders,
            reanchored=valid.audit.problem is not None,
        )
        logger.warning("database restored", extra={"source": str(source), "safety_copy": str(safety)})
        # Still under the lock: no server starts before the restore is in the audit trail.
        return _audited(result, previous=previous, audit_problem=valid.audit.problem, actor=actor)


def _take_lock(stack: ExitStack, database: Path) -> ExclusiveLock:
    try:
        return stack.enter_context(exclusive_serving_lock(database))
    except OSError as exc:
        path = serving_lock_path(database)
        raise StoreError(f"cannot open the serving lock {path} ({exc}); nothing was changed") from exc


def _checked_source(source: Path, database: Path, using: str) -> Path:
    source = source.expanduser().absolute()
    if not source.is_file():
        raise RestoreRefused("not_found", f"{source} does not exist or is not a file; nothing was changed")
    if database.exists() and source.samefile(database):
        raise RestoreRefused("same_file", f"{source} is the live database itself; nothing was changed")
    if connections[using].in_atomic_block:
        raise RestoreRefused("in_transaction", "restore cannot run inside a database transaction; nothing was changed")
    return source


def _remove_stale_copies(database: Path) -> None:
    """Copies left by a restore that was killed; no restore runs while we hold the lock."""
    for stale in database.parent.glob(f".{database.name}.restore.tmp-*"):
        remove_quietly(stale)


def _server_running(database: Path, lock: ExclusiveLock) -> str:
    who = f" (pid {', '.join(map(str, lock.holders))})" if lock.holders else ""
    return (
        f"a cloudops server (or `sync_jobs --loop`, or another restore) is using {database}{who}. Stop it and run "
        "the restore again, or pass --force to restore under it: requests in flight may fail, and writes they "
        "commit between the safety copy and the swap are lost. Nothing was changed."
    )


@dataclass(frozen=True)
class Validated:
    inspection: Inspection
    migrated: tuple[str, ...]
    audit: AuditCheck
    source_sha256: str


def _validated_copy(source: Path, staged: Path, reanchor_audit: bool) -> Validated:
    """Stage, inspect, migrate (an older backup) and check the audit head; refusals name the source."""
    try:
        digest = _stage(source, staged)
        inspection = inspect_copy(staged)
        migrated: tuple[str, ...] = ()
        if inspection.pending:
            migrated = _migrate_copy(staged)
            inspection = inspect_copy(staged)
            if inspection.pending:
                raise RestoreRefused("migration_failed", f"still lacks {', '.join(inspection.pending)} after migrate")
        audit_check = check_audit_head(staged, allow_reanchor=reanchor_audit)
    except RestoreRefused as exc:
        raise RestoreRefused(exc.reason, f"{source} {exc}; nothing was changed") from exc
    return Validated(inspection, migrated, audit_check, digest)


def _stage(source: Path, staged: Path) -> str:
    """Copy (gunzip) the backup beside the database; returns the sha256 of the backup file."""
    try:
        return copy_hashing(source, staged, gunzip=is_gzip(source))
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise RestoreRefused("not_gzip", f"is not a complete gzip file ({exc})") from exc
    except OSError as exc:
        raise StoreError(f"cannot copy {source} beside the database ({staged.parent}): {exc}") from exc


def _migrate_copy(staged: Path) -> tuple[str, ...]:
    """Apply this code's missing migrations to the copy, with `manage.py migrate` in a subprocess.

    A separate process has the copy as its only database, exactly as `migrate` runs for a
    server, so data migrations that read settings or the audit key behave as they always do.
    """
    before = _applied(staged)
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{staged}",
        # The module this process was configured with (override_settings hides SETTINGS_MODULE).
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE")
        or getattr(settings, "SETTINGS_MODULE", None)
        or "cloudops.settings",
    }
    command = [sys.executable, "-m", "django", "migrate", "--noinput"]
    try:
        done = subprocess.run(
            command,
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=settings.SIMPLETUNER_RESTORE_MIGRATE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RestoreRefused("migration_failed", f"could not be migrated within {exc.timeout:.0f} s") from exc
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise RestoreRefused("migration_failed", f"could not be brought up to date by migrate: {tail}")
    return tuple(sorted(_applied(staged) - before))


def _applied(path: Path) -> set[str]:
    with closing(connect(path)) as conn:
        return {f"{app}.{name}" for app, name in conn.execute("SELECT app, name FROM django_migrations")}


def _match_page_size(staged: Path, database: Path) -> None:
    if not database.exists() or database.stat().st_size == 0 or not is_database(database):
        return
    with closing(connect(database)) as live, closing(connect(staged)) as copy:
        wanted, current = page_size(live), page_size(copy)
    if wanted != current:
        convert_page_size(staged, wanted)


def _safety_copy(database: Path, backup_dir: Path, now: datetime, timeout: float) -> Path | None:
    """The current database, kept in the backups directory; None when there is none."""
    if not database.exists() or database.stat().st_size == 0:
        return None
    tmp = temp_beside(private_dir(backup_dir) / "jobs_pre_restore.db")
    try:
        raw_wal = None
        try:
            snapshot(database, tmp, timeout=timeout)
        except sqlite3.OperationalError as exc:
            # Busy or an I/O error, not damage: a raw copy of a live database could be torn.
            raise StoreError(f"cannot read {database} for the safety copy ({exc}); nothing was changed") from exc
        except sqlite3.DatabaseError:
            # Unreadable (maybe why it is being restored): keep its bytes and WAL as they are.
            # Copying opens the file outside SQLite, which is safe only because SQLite cannot
            # read it, so no connection of this process holds locks on it (see sqlite.py).
            shutil.copyfile(database, tmp)
            raw_wal = database.with_name(database.name + "-wal")
        final = publish_new(tmp, lambda attempt: backup_filename(SAFETY_PREFIX, now, gz=False, attempt=attempt))
        if raw_wal is not None and raw_wal.exists():
            shutil.copyfile(raw_wal, wal_copy := final.with_name(final.name + "-wal"))
            fsync_file(wal_copy)
        return final
    except OSError as exc:
        raise StoreError(f"cannot write the safety copy to {backup_dir} ({exc}); nothing was changed") from exc
    finally:
        remove_quietly(tmp)


def _previous_head(database: Path) -> dict[str, object] | None:
    """The replaced database's audit head: where the chain the restore discards ended."""
    try:
        with closing(connect(database)) as conn:
            row = conn.execute("SELECT last_sequence, last_mac, key_id FROM audit_audithead WHERE id = 1").fetchone()
    except sqlite3.Error:
        return None
    return dict(zip(("last_sequence", "last_mac", "key_id"), row, strict=True)) if row else None


def _check_swappable(database: Path, lock: ExclusiveLock) -> None:
    if not is_database(database) and not lock.acquired:
        raise RestoreRefused(
            "server_running",
            f"{database} is not readable as a database, so the file itself must be replaced, and other processes "
            "have it open: stop them and restore again (even --force cannot do this); nothing was changed",
        )


def _swap_in(staged: Path, database: Path, lock: ExclusiveLock, timeout: float) -> None:
    if is_database(database):
        try:
            copy_into_live(staged, database, timeout=timeout)
        except sqlite3.Error as exc:
            raise StoreError(f"the restore into {database} failed and was rolled back: {exc}") from exc
        return
    # The current file is not a database at all (its header is destroyed), so SQLite cannot
    # write into it: replace the file. _check_swappable made sure no other process has it open.
    assert lock.acquired
    # The old WAL belongs to the old file: it must be gone before the new file takes the name.
    for suffix in ("-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    publish(staged, database)
    with closing(connect(database)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def _audited(
    result: RestoreResult, *, previous: dict[str, object] | None, audit_problem: str | None, actor: Actor | None
) -> RestoreResult:
    details = {
        "source": str(result.source),
        "source_sha256": result.source_sha256,
        "safety_copy": str(result.safety_copy) if result.safety_copy else None,
        "jobs": result.jobs,
        "migrations_applied": list(result.migrations_applied),
        "forced": result.forced,
        "server_pids": result.server_pids,
        # The chain the restore replaced ended here; its entries are in the safety copy.
        "replaced_head": previous,
        "reanchored": result.reanchored,
        **who_ran_it(),
    }
    try:
        if audit_problem is not None:
            audit_reanchor(reason=f"restored {result.source.name}: {audit_problem}", actor=actor)
        audit_record(
            event_type=events.BACKUP_RESTORED,
            actor=actor or Actor(),
            target_type="database",
            target_id=result.database.name,
            action="restore",
            details=details,
        )
    except AuditChainError as exc:
        logger.error("database restored from %s, but its audit entry failed: %s", result.source, exc)
        return replace(result, audit_error=str(exc))
    return result
