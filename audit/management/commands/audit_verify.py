from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.chain import AuditKeyUnavailable
from audit.verification import AuditRangeError, audit_verify


class Command(BaseCommand):
    help = "Verify the audit trail's HMAC chain (or a range of it). Exit code 0 when it verifies, 1 when not."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from-sequence", type=int, default=None, help="first entry to check")
        parser.add_argument("--to-sequence", type=int, default=None, help="last entry to check")
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="print the whole result as JSON on stdout"
        )

    def handle(
        self, *args: Any, from_sequence: int | None, to_sequence: int | None, as_json: bool, **options: Any
    ) -> None:
        try:
            result = audit_verify(from_sequence=from_sequence, to_sequence=to_sequence, trigger="command")
        except AuditRangeError as exc:
            raise CommandError(f"--{exc.parameter.replace('_', '-')}: {exc}", returncode=2) from exc
        except AuditKeyUnavailable as exc:
            raise CommandError(str(exc), returncode=2) from exc
        if as_json:
            self.stdout.write(_json(result.as_dict()))
        span = f"#{result.from_sequence}..#{result.to_sequence}" if result.from_sequence else "no entries"
        if not result.ok:
            raise CommandError(f"FAILED ({result.reason} at #{result.first_bad_sequence}): {result.message}")
        # With --json, stdout stays machine-readable and the summary goes to stderr.
        (self.stderr if as_json else self.stdout).write(
            f"OK: {result.checked} chained entries verified ({span}; {result.unverified} before the anchor, "
            f"not chained) in {result.duration_ms:.0f} ms"
        )


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str)
