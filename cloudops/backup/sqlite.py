"""SQLite file operations: online snapshots, integrity, and copying a database into the live one.

Both directions use SQLite's online backup API in a single step (`pages=-1`):

- A snapshot reads the live database inside one read transaction, so the copy is the
  database as of one commit, while the server's writers go on (WAL mode lets a writer
  commit beside a reader).
- A restore writes every page of the validated copy into the live database inside one
  write transaction. SQLite's own commit makes it atomic and crash-safe: a crash, a kill or
  a full disk before the commit leaves the old database intact (uncommitted WAL frames are
  ignored), after it the new one, never a mix. The WAL and shared-memory files stay
  SQLite's to manage, so the restored pages can never be mixed with a stale WAL, and
  connections other processes still hold see the restored database at their next
  transaction (SQLite bumps the schema cookie) instead of a replaced file.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from cloudops.backup.files import fsync_file

SQLITE_MAGIC = b"SQLite format 3\x00"


def has_sqlite_header(path: Path) -> bool:
    """For files no SQLite connection of this process may have open (backups, staged copies).

    Never for the live database: closing any descriptor of a file drops every POSIX lock this
    process holds on it, including its SQLite connections' locks, and another process may then
    take itself for the last user and delete the WAL under them
    (https://sqlite.org/howtocorrupt.html, section 2.2). Use `is_database` there.
    """
    try:
        with path.open("rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def is_database(path: Path) -> bool:
    """Can SQLite use the file at `path`? Missing or empty counts (SQLite would create it).

    Asked through SQLite itself, which shares descriptors and locks between the connections
    of one process, so it is safe on the live database (see `has_sqlite_header`).
    """
    if not path.exists() or path.stat().st_size == 0:
        return True
    try:
        with closing(connect(path)) as conn:
            conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.OperationalError:
        raise
    except sqlite3.DatabaseError:
        return False
    return True


def connect(path: Path, *, timeout: float = 30.0) -> sqlite3.Connection:
    """A plain connection in autocommit mode (the backup API needs no open transaction)."""
    return sqlite3.connect(str(path), timeout=timeout, isolation_level=None)


def snapshot(source: Path, target: Path, *, timeout: float) -> None:
    """Copy the live database `source` into the new, empty file `target`, standalone.

    The copy is switched to rollback-journal mode, so it is one self-contained file: opening
    it later creates no -wal/-shm beside it, and it can be gzipped or copied as it is.
    """
    with closing(connect(source, timeout=timeout)) as src, closing(connect(target)) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
    fsync_file(target)


def integrity_problems(conn: sqlite3.Connection, limit: int = 5) -> list[str]:
    rows = [row[0] for row in conn.execute(f"PRAGMA integrity_check({limit})")]
    return [] if rows == ["ok"] else rows


def page_size(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA page_size").fetchone()[0]


def convert_page_size(path: Path, size: int) -> None:
    """Rewrite the (rollback-journal mode) database at `path` with `size`-byte pages.

    A database in WAL mode cannot change its page size, and the backup API refuses to copy
    between different page sizes into one, so a copy is converted before it is restored.
    """
    with closing(connect(path)) as conn:
        conn.execute(f"PRAGMA page_size={int(size)}")
        conn.execute("VACUUM")


def copy_into_live(source: Path, live: Path, *, timeout: float) -> None:
    """Replace the content of `live` with `source` in one SQLite write transaction."""
    new = not live.exists() or live.stat().st_size == 0
    with closing(connect(source)) as src, closing(connect(live, timeout=timeout)) as dst:
        # FULL: the commit that swaps the content is durable before we report success.
        dst.execute("PRAGMA synchronous=FULL")
        src.backup(dst)
        if new:
            dst.execute("PRAGMA journal_mode=WAL")
        # Move the restored pages from the WAL into the database file and empty the WAL;
        # busy readers only delay this (the data is committed either way).
        dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def table_names(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def column_names(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}


def count_rows(conn: sqlite3.Connection, table: str) -> int | None:
    if table not in table_names(conn):
        return None
    return conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
