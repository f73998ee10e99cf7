from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from cloudops.backup import JobStore
from cloudops.backup.cli import human_size, require_sqlite


class Command(BaseCommand):
    help = "List the backups (*.db, *.db.gz) in SIMPLETUNER_BACKUP_DIR or --dir, newest first: name, size, time."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dir", dest="directory", type=Path, default=None, help="another backups directory")
        parser.add_argument("--json", dest="as_json", action="store_true", help="one JSON document")

    def handle(self, *args: Any, directory: Path | None, as_json: bool, **options: Any) -> None:
        store = JobStore(directory)
        require_sqlite(self, store, "list_backups")
        rows = [_row(path) for path in store.list_backups()]
        if as_json:
            self.stdout.write(json.dumps({"directory": str(store.backup_dir), "backups": rows}, indent=2))
            return
        if not rows:
            self.stdout.write(f"No backups in {store.backup_dir}")
            return
        width = max(len(row["name"]) for row in rows)
        self.stdout.write(f"{'name'.ljust(width)}  {'size':>9}  modified (UTC)")
        for row in rows:
            self.stdout.write(f"{row['name'].ljust(width)}  {human_size(row['size_bytes']):>9}  {row['modified']}")
        self.stdout.write(f"{len(rows)} backup(s) in {store.backup_dir}")


def _row(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {
        "name": path.name,
        "path": str(path),
        "size_bytes": st.st_size,
        "modified": datetime.fromtimestamp(st.st_mtime, UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }
