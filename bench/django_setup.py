"""The Django set-up of the in-process benchmarks: SQLite in a fresh SIMPLETUNER_HOME."""

from __future__ import annotations

import os
from pathlib import Path


def setup_django(home: Path, *, migrate: bool = True, env: dict[str, str] | None = None) -> None:
    """Settings for a benchmark run in `home` (SQLite, a fixed audit key, quiet logs), plus
    `env`; then django.setup() and, with `migrate`, the migrations."""
    os.environ["SIMPLETUNER_HOME"] = str(home)
    os.environ["DJANGO_SETTINGS_MODULE"] = "cloudops.settings"
    os.environ.setdefault("SIMPLETUNER_AUDIT_KEY", "bench-audit-key-" + "0" * 32)
    os.environ.pop("DATABASE_URL", None)
    os.environ["SIMPLETUNER_LOG_LEVEL"] = "warning"
    os.environ.update(env or {})
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
