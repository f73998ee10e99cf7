from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cloudops.backup import JobStore, StoreError, restore_backup
from cloudops.backup.cli import require_sqlite


class Command(BaseCommand):
    help = (
        "Replace the SQLite job database with a backup (.db or .db.gz) after validating it (integrity, schema, "
        "migrations, audit chain), keeping a safety copy of the current database. Refused while a server runs "
        "unless --force."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="the backup to restore")
        parser.add_argument("--force", action="store_true", help="restore even while server processes use the database")
        parser.add_argument(
            "--reanchor-audit",
            action="store_true",
            help="accept a backup whose audit chain the configured key cannot extend, and start a new verifiable "
            "segment (earlier entries are then no longer verified)",
        )

    def handle(self, *args: Any, path: Path, force: bool, reanchor_audit: bool, **options: Any) -> None:
        store = JobStore()
        require_sqlite(self, store, "restore")
        try:
            result = restore_backup(store, path, force=force, reanchor_audit=reanchor_audit)
        except StoreError as exc:
            raise CommandError(str(exc)) from exc
        if result.forced:
            pids = ", ".join(map(str, result.server_pids)) or "unknown"
            self.stderr.write(f"WARNING: restored under running server processes (pid {pids}) because of --force")
        if result.migrations_applied:
            self.stdout.write(f"Brought the backup up to date: applied {', '.join(result.migrations_applied)}")
        if result.reanchored:
            self.stdout.write("Re-anchored the audit chain: entries before the restore are no longer verified")
        if result.safety_copy:
            self.stdout.write(f"Safety copy of the replaced database: {result.safety_copy}")
            self.stdout.write(f"  (to undo: python manage.py restore {result.safety_copy})")
        if result.audit_error:
            raise CommandError(f"restored, but the backup.restored audit entry failed: {result.audit_error}")
        self.stdout.write(
            f"Restored {result.database} from {result.source} ({result.jobs} jobs, {result.audit_entries} audit entries)"
        )
