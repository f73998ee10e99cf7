"""Keep each SQLite database's write-ahead log open for the life of a server process.

SQLite checkpoints the WAL into the database and deletes it whenever the last connection to
the database closes. A server opens a connection per request and closes it after (each request
runs in a thread of its own), so on a quiet server every request was the last one: a
checkpoint, four fsyncs and two file deletions per request, about half the cost of a webhook
delivery. One idle connection per database, opened at start-up and never used again, keeps
the WAL open; checkpoints then happen as SQLite's automatic ones do (every 1,000 pages), and
the WAL is checkpointed and removed when the process exits.

The connection holds no transaction, so it blocks neither writers, checkpoints, backups nor
`manage.py restore` (which refuses while a server holds the serving lock anyway).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from django.db import connections

from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.database")

# Per-process plumbing, by database path: the connections must live as long as the process.
_open: dict[str, sqlite3.Connection] = {}


def keep_wal_open(databases: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """Open one idle connection to every SQLite database in `databases` (default: the ones
    configured); returns the paths held open."""
    for settings in (connections.settings if databases is None else databases).values():
        path = str(settings["NAME"])
        if settings["ENGINE"] != "django.db.backends.sqlite3" or _in_memory(path) or path in _open:
            continue
        try:
            keeper = sqlite3.connect(path, check_same_thread=False)
            # The first read opens the WAL and its shared-memory index; autocommit, so no
            # transaction stays open after it.
            keeper.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            logger.warning("could not keep the SQLite write-ahead log open for %s: %s", path, exc)
            continue
        _open[path] = keeper
    return list(_open)


def _in_memory(path: str) -> bool:
    return path == ":memory:" or "mode=memory" in path
