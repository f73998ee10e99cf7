"""Shared by the backup, list_backups, dbinfo and restore commands."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from cloudops.backup import JobStore

# Exit status when the server uses PostgreSQL/MySQL: nothing was done, the native tools
# were printed instead (non-zero, so a cron job that expected a backup notices).
EXIT_NOT_SQLITE = 2


def require_sqlite(command: BaseCommand, store: JobStore, what: str) -> None:
    """On a server database, print the pg_dump / mysqldump commands and stop with status 2."""
    tools = store.native_tools()
    if tools is None:
        return
    command.stdout.write(tools.explain())
    raise CommandError(
        f"{what} works on the embedded SQLite database; this server uses {tools.vendor_name}: "
        "use the commands above. Nothing was done.",
        returncode=EXIT_NOT_SQLITE,
    )


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
