from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.chain import AuditChainError
from audit.services import audit_reanchor


class Command(BaseCommand):
    help = (
        "Start a new verifiable segment of the audit chain at its current end, after a lost or changed "
        "SIMPLETUNER_AUDIT_KEY or an investigated incident. Entries before it are no longer verified."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reason", required=True, help="why (recorded in the audit.reanchored entry)")
        parser.add_argument("--yes", action="store_true", help="confirm: earlier entries will no longer be verified")

    def handle(self, *args: Any, reason: str, yes: bool, **options: Any) -> None:
        if not yes:
            raise CommandError(
                "Re-anchoring stops verification of every earlier entry. Save `manage.py audit_verify --json` "
                "output first, then run again with --yes."
            )
        if not reason.strip():
            raise CommandError("--reason must not be empty")
        try:
            entry = audit_reanchor(reason=reason.strip())
        except AuditChainError as exc:
            raise CommandError(str(exc)) from exc
        anchor = entry.details["anchor_sequence"]
        self.stdout.write(f"Re-anchored at #{anchor}; verification now starts at #{anchor + 1}.")
