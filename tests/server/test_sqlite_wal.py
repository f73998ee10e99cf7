"""A server process keeps each SQLite database's write-ahead log open (cloudops/sqlite_wal.py),
so a request's connection closing is never the last one: no checkpoint, fsync and WAL deletion
per request."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cloudops.sqlite_wal import keep_wal_open

SQLITE = "django.db.backends.sqlite3"


def make_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.close()


def write_once(path: Path) -> None:
    """What a request does: open, write in a transaction, close."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO t VALUES (1)")
    conn.close()


def wal_of(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def test_without_a_kept_connection_the_last_close_checkpoints_and_deletes_the_wal(tmp_path: Path) -> None:
    db = tmp_path / "alone.db"
    make_database(db)
    write_once(db)
    assert not wal_of(db).exists()


def test_a_kept_connection_leaves_the_wal_in_place_and_the_writes_visible(tmp_path: Path) -> None:
    db = tmp_path / "kept.db"
    make_database(db)
    assert str(db) in keep_wal_open({"default": {"ENGINE": SQLITE, "NAME": db}})
    write_once(db)
    write_once(db)
    assert wal_of(db).exists()
    reader = sqlite3.connect(db)
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (2,)
    reader.close()


def test_only_sqlite_files_are_held(tmp_path: Path) -> None:
    held = keep_wal_open(
        {
            "memory": {"ENGINE": SQLITE, "NAME": ":memory:"},
            "shared": {"ENGINE": SQLITE, "NAME": "file:memorydb_default?mode=memory&cache=shared"},
            "server": {"ENGINE": "django.db.backends.postgresql", "NAME": "test"},
        }
    )
    assert not any("memory" in path or path == "test" for path in held)
    assert not (Path.cwd() / "file:memorydb_default?mode=memory&cache=shared").exists()
