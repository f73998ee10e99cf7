from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cloudops.backup import JobStore
from cloudops.backup.cli import require_sqlite


class Command(BaseCommand):
    help = "Show the SQLite job database: path, size, WAL size, job and audit counts, schema version, backups."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", dest="as_json", action="store_true", help="one JSON document")

    def handle(self, *args: Any, as_json: bool, **options: Any) -> None:
        store = JobStore()
        require_sqlite(self, store, "dbinfo")
        info = store.get_database_info()
        if as_json:
            self.stdout.write(json.dumps(info, indent=2, sort_keys=True))
        else:
            for line in _lines(info):
                self.stdout.write(line)
        if info.get("error"):
            raise CommandError(f"the database cannot be read: {info['error']} (see PRAGMA integrity_check)")


def _lines(info: dict[str, Any]) -> list[str]:
    schema = ", ".join(f"{app} {name}" for app, name in info.get("schema_version", {}).items()) or "(not migrated)"
    pending = info.get("pending_migrations") or []
    state = "current" if info.get("schema_current") else f"{len(pending) or 'all'} migration(s) pending: run migrate"
    servers = ", ".join(map(str, info["server_pids"])) or "none"
    rows = [
        ("path", info["path"] + ("" if info["exists"] else "  (does not exist)")),
        ("size_mb", f"{info['size_mb']}  (with WAL and shared memory: {info['total_size_mb']})"),
        ("wal_size_mb", f"{info['wal_size_mb']}  ({info['wal_path']})"),
        ("journal_mode", info.get("journal_mode", "-")),
        (
            "pages",
            f"{info.get('page_count', '-')} x {info.get('page_size', '-')} B, {info.get('freelist_count', '-')} free",
        ),
        ("job_count", f"{info.get('job_count')}  {_statuses(info.get('jobs_by_status') or {})}".rstrip()),
        ("audit_count", f"{info.get('audit_count')}  ({info.get('audit_written')} ever written)"),
        ("schema_version", f"{schema}  ({state})"),
        ("sqlite_version", info["sqlite_version"]),
        ("server_pids", servers),
        ("backup_dir", f"{info['backup_dir']}  ({info['backup_count']} backups)"),
        ("last_backup", f"{info['last_backup']}  ({info['last_backup_at']})" if info["last_backup"] else "none"),
    ]
    return [f"{name + ':':<16}{value}" for name, value in rows]


def _statuses(by_status: dict[str, int]) -> str:
    return "(" + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) + ")" if by_status else ""
