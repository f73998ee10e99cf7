"""What the live SQLite database holds and weighs: `manage.py dbinfo` and get_database_info()."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Count

from audit.selectors import audit_totals
from cloudops.backup.files import SAFETY_PREFIX, list_backup_files
from cloudops.backup.lock import lock_holders, serving_lock_path
from providers.models import Job


def _mb(size: int) -> float:
    return round(size / (1024 * 1024), 2)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def database_info(*, database: Path, backup_dir: Path, using: str) -> dict[str, Any]:
    wal = database.with_name(database.name + "-wal")
    shm = database.with_name(database.name + "-shm")
    size, wal_size = _size(database), _size(wal)
    info: dict[str, Any] = {
        "engine": "sqlite",
        "path": str(database),
        "exists": database.exists(),
        "size_bytes": size,
        "size_mb": _mb(size),
        "wal_path": str(wal),
        "wal_size_bytes": wal_size,
        "wal_size_mb": _mb(wal_size),
        "total_size_mb": _mb(size + wal_size + _size(shm)),
        "sqlite_version": sqlite3.sqlite_version,
    }
    if info["exists"]:
        try:
            info.update(_pages(using))
        except DatabaseError as exc:
            # Damaged: say so (the sizes above still help); see the README's troubleshooting.
            info["error"] = str(exc)
        else:
            info.update(_contents(using))
    info.update(_backups(backup_dir))
    info["server_pids"] = lock_holders(serving_lock_path(database))
    return info


def _pages(using: str) -> dict[str, Any]:
    with connections[using].cursor() as cursor:
        values = {}
        for name in ("page_size", "page_count", "freelist_count", "journal_mode"):
            cursor.execute(f"PRAGMA {name}")
            values[name] = cursor.fetchone()[0]
    return values


def _contents(using: str) -> dict[str, Any]:
    """Counts and schema; None/[] where the database is not migrated yet."""
    try:
        by_status = dict(Job.objects.using(using).values_list("status").annotate(n=Count("id")).order_by())
        totals = audit_totals()
        applied = MigrationRecorder(connections[using]).applied_migrations()
        executor = MigrationExecutor(connections[using])
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        return {"job_count": None, "audit_count": None, "schema_version": {}, "schema_current": False}
    latest: dict[str, str] = {}
    for app, name in sorted(applied):
        latest[app] = name
    return {
        "job_count": sum(by_status.values()),
        "jobs_by_status": by_status,
        "audit_count": totals.total,
        "audit_written": totals.written,
        "schema_version": latest,
        "schema_current": not pending,
        "pending_migrations": [f"{m.app_label}.{m.name}" for m, _ in pending],
    }


def _backups(backup_dir: Path) -> dict[str, Any]:
    backups = list_backup_files(backup_dir)
    # The last deliberate backup: a restore's safety copy is not one.
    newest = next((path for path in backups if not path.name.startswith(SAFETY_PREFIX)), None)
    return {
        "backup_dir": str(backup_dir),
        "backup_count": len(backups),
        "last_backup": str(newest) if newest else None,
        "last_backup_at": (
            datetime.fromtimestamp(newest.stat().st_mtime, UTC).isoformat(timespec="seconds") if newest else None
        ),
    }
