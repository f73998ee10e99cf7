from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cloudops.backup import JobStore, StoreError, create_backup
from cloudops.backup.cli import human_size, require_sqlite


class Command(BaseCommand):
    help = (
        "Back up the SQLite job database with SQLite's online backup API (consistent while the server runs). "
        "PATH is a file or a directory (default: SIMPLETUNER_BACKUP_DIR, named jobs_backup_YYYYmmdd_HHMMSS.db). "
        "The backup's path is printed alone on the last line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", nargs="?", type=Path, default=None, help="backup file or directory")
        parser.add_argument("--gzip", action="store_true", help="compress (adds .gz; a PATH ending in .gz implies it)")
        parser.add_argument(
            "--keep", type=int, default=None, metavar="N", help="then delete all but the newest N jobs_backup_* files"
        )
        parser.add_argument(
            "--retention-days",
            type=int,
            default=None,
            metavar="D",
            help="then delete jobs_backup_* files modified more than D days ago (find -mtime +D)",
        )

    def handle(
        self, *args: Any, path: Path | None, gzip: bool, keep: int | None, retention_days: int | None, **options: Any
    ) -> None:
        store = JobStore()
        require_sqlite(self, store, "backup")
        if keep is not None and keep < 1:
            raise CommandError("--keep must be at least 1 (the backup just made is always kept)")
        if retention_days is not None and retention_days < 0:
            raise CommandError("--retention-days must not be negative")
        try:
            result = create_backup(store, path, gzip=gzip, keep=keep, retention_days=retention_days)
        except StoreError as exc:
            raise CommandError(str(exc)) from exc
        for removed in result.removed:
            self.stdout.write(f"Removed old backup {removed}")
        if result.audit_error:
            self.stderr.write(f"WARNING: the backup is complete, but its audit entry failed: {result.audit_error}")
        self.stdout.write(
            f"Backed up {store.db_path} ({result.jobs} jobs, {result.audit_entries} audit entries; "
            f"{human_size(result.size_bytes)}, sha256 {result.sha256}) to:"
        )
        self.stdout.write(str(result.path))
