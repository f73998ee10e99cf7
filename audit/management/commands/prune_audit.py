from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.chain import AuditChainError
from audit.retention import AuditPruneRefused, audit_prune


class Command(BaseCommand):
    help = (
        "Remove audit entries older than SIMPLETUNER_AUDIT_RETENTION_DAYS (or --days), keeping the rest verifiable. "
        "Safe to run twice; meant for cron."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=int, default=None, help="keep this many days (default SIMPLETUNER_AUDIT_RETENTION_DAYS)"
        )
        parser.add_argument("--dry-run", action="store_true", help="report what would be removed, remove nothing")
        parser.add_argument(
            "--force", action="store_true", help="prune even when the entries to remove do not verify (recorded)"
        )

    def handle(self, *args: Any, days: int | None, dry_run: bool, force: bool, **options: Any) -> None:
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1 (0 would remove everything; leave retention unset instead)")
        try:
            result = audit_prune(retention_days=days, dry_run=dry_run, force=force)
        except AuditPruneRefused as exc:
            raise CommandError(f"{exc} Investigate with `manage.py audit_verify`; --force prunes anyway.") from exc
        except AuditChainError as exc:
            raise CommandError(str(exc)) from exc
        if result.retention_days <= 0:
            self.stdout.write(
                f"Retention is off (SIMPLETUNER_AUDIT_RETENTION_DAYS={settings.SIMPLETUNER_AUDIT_RETENTION_DAYS}): "
                "nothing pruned."
            )
            return
        verb = "would prune" if dry_run else "pruned"
        self.stdout.write(
            f"{verb} {result.pruned} entries older than {result.cutoff:%Y-%m-%d %H:%M:%S} UTC "
            f"(through #{result.through_sequence}; {result.deleted_rows} rows deleted)"
        )
