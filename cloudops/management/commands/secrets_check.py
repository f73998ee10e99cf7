"""`manage.py secrets_check`: the health `secrets` table on the command line, for runbooks and CI.

Exit codes: 0 every configured provider answered and every required key was found;
1 a required key is missing; 3 a configured provider is unavailable (whether or not keys are
missing: the outage is the thing to fix first); 2 is argparse's own usage error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cloudops.health import required_secrets
from cloudops.secrets import KNOWN_SECRETS, SecretsReport, secrets_check

EXIT_MISSING = 1
EXIT_UNAVAILABLE = 3


class Command(BaseCommand):
    help = (
        "Show which provider supplies each secret (never its value) and whether each configured "
        "provider is reachable. Exit 0 when all is well, 1 when a required key is missing, 3 when a "
        "provider is unavailable."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--key", action="append", default=[], metavar="NAME", help="also check this key (repeatable)"
        )
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="print one JSON document instead of tables"
        )

    def handle(self, *args: Any, key: list[str], as_json: bool, **options: Any) -> None:
        # The same list health requires: the operator's keys plus what enabled providers need.
        required = required_secrets()
        report = secrets_check(required=required, optional=[*KNOWN_SECRETS, *key])
        self.stdout.write(_as_json(report) if as_json else _as_tables(report))
        if report.unavailable:
            names = ", ".join(p.name for p in report.unavailable)
            raise CommandError(f"unavailable secrets provider: {names}", returncode=EXIT_UNAVAILABLE)
        if report.missing:
            raise CommandError(f"required secret missing: {', '.join(report.missing)}", returncode=EXIT_MISSING)
        if not as_json:
            self.stdout.write(
                f"OK: {len(report.providers)} provider(s) reachable, {len(required)} required key(s) found"
            )


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def _as_tables(report: SecretsReport) -> str:
    keys = [(k.key, k.source or "-", k.status + (" (required)" if k.required else "")) for k in report.keys]
    providers = [
        (
            p.name,
            "ok" if p.reachable else "unavailable",
            f"{p.latency_ms:.0f} ms",
            p.location + (f": {p.error}" if p.error else ""),
        )
        for p in report.providers
    ]
    return (
        _table(("KEY", "SOURCE", "STATUS"), keys)
        + "\n\n"
        + _table(("PROVIDER", "STATUS", "LATENCY", "DETAIL"), providers)
        + "\n"
    )


def _as_json(report: SecretsReport) -> str:
    document = {
        "ok": not report.unavailable and not report.missing,
        "keys": [{"key": k.key, "source": k.source, "status": k.status, "required": k.required} for k in report.keys],
        "providers": [
            {
                "name": p.name,
                "location": p.location,
                "status": "ok" if p.reachable else "unavailable",
                "error": p.error,
                "latency_ms": p.latency_ms,
            }
            for p in report.providers
        ],
    }
    return json.dumps(document, indent=2)
