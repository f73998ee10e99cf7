"""Is this file a cloudops database this code can run on? Checks a staged copy before a restore.

In order: the SQLite header; `PRAGMA integrity_check`; `PRAGMA foreign_key_check`; a
`django_migrations` table recording this project's migrations; no migration this code
does not know (a newer cloudops, or another application: refused); and, when every
migration is applied, every table and column the models expect. A backup from an older
cloudops (migrations missing, none unknown) is brought up to date by the restore before it
is swapped in (cloudops/backup/restore.py).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps
from django.db.migrations.loader import MigrationLoader

from audit.chain import AuditChainError, AuditKey, HeadState, audit_key
from cloudops.backup.errors import RestoreRefused
from cloudops.backup.sqlite import (
    column_names,
    connect,
    count_rows,
    has_sqlite_header,
    integrity_problems,
    table_names,
)

# A cloudops database records this app's migrations; a database without them is foreign.
CORE_APP = "providers"
_AUDIT_HEAD_COLUMNS = "last_sequence, last_mac, anchor_sequence, anchor_mac, pruned_through, key_id, mac"


@dataclass(frozen=True)
class Inspection:
    """What a staged copy holds: its migrations, what is still to apply, a few counts."""

    applied: frozenset[tuple[str, str]]
    pending: tuple[str, ...]
    jobs: int | None = None
    audit_entries: int | None = None


def inspect_copy(path: Path) -> Inspection:
    """Refuse (RestoreRefused) anything that is not a sound cloudops database; else describe it."""
    if not has_sqlite_header(path):
        raise RestoreRefused("not_sqlite", "is not a SQLite database (no SQLite header)")
    try:
        with closing(connect(path)) as conn:
            # A copy made by the sqlite3 CLI's .backup keeps the WAL flag: make it one plain file.
            conn.execute("PRAGMA journal_mode=DELETE")
            return _inspect(conn)
    except sqlite3.DatabaseError as exc:
        raise RestoreRefused("corrupt", f"cannot be read as a SQLite database: {exc}") from exc


def _inspect(conn: sqlite3.Connection) -> Inspection:
    problems = integrity_problems(conn)
    if problems:
        raise RestoreRefused("corrupt", f"fails PRAGMA integrity_check: {'; '.join(problems)}")
    tables = table_names(conn)
    if "django_migrations" not in tables:
        raise RestoreRefused("foreign", "has no django_migrations table: it is not a cloudops database")
    applied = frozenset(conn.execute("SELECT app, name FROM django_migrations"))
    if not any(app == CORE_APP for app, _ in applied):
        raise RestoreRefused("foreign", f"records no {CORE_APP} migrations: it is not a cloudops database")
    known, plan = _code_migrations()
    unknown = sorted(f"{app}.{name}" for app, name in applied - known)
    if unknown:
        raise RestoreRefused(
            "newer",
            f"records migrations this version of cloudops does not have ({', '.join(unknown[:10])}): it was "
            "written by a newer cloudops (upgrade cloudops, then restore) or by another application",
        )
    pending = tuple(f"{app}.{name}" for app, name in plan if (app, name) not in applied)
    if not pending:
        check_tables(conn, tables)
    orphans = conn.execute("PRAGMA foreign_key_check").fetchmany(5)
    if orphans:
        rows = "; ".join(f"{table} row {rowid} -> {parent}" for table, rowid, parent, _ in orphans)
        raise RestoreRefused("corrupt", f"has rows whose foreign keys point nowhere ({rows})")
    return Inspection(
        applied=applied,
        pending=pending,
        jobs=count_rows(conn, "providers_job"),
        audit_entries=count_rows(conn, "audit_auditentry"),
    )


def _code_migrations() -> tuple[frozenset[tuple[str, str]], list[tuple[str, str]]]:
    """Every migration this code knows, and all of them in the order `migrate` applies them."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    known = set(loader.graph.nodes)
    # A squashed migration stands for the ones it replaces; a backup may record either.
    for migration in loader.replacements.values():
        known.update(migration.replaces)
    plan: list[tuple[str, str]] = []
    for leaf in loader.graph.leaf_nodes():
        plan += [node for node in loader.graph.forwards_plan(leaf) if node not in plan]
    return frozenset(known), plan


def check_tables(conn: sqlite3.Connection, tables: set[str]) -> None:
    """Every table and column of every installed model exists (migrations alone can lie)."""
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if not meta.managed or meta.proxy:
            continue
        if meta.db_table not in tables:
            raise RestoreRefused("schema", f"lacks the table {meta.db_table} that its recorded migrations create")
        missing = {f.column for f in meta.local_concrete_fields} - column_names(conn, meta.db_table)
        if missing:
            raise RestoreRefused("schema", f"table {meta.db_table} lacks the columns {', '.join(sorted(missing))}")


@dataclass(frozen=True)
class AuditCheck:
    """The copy's audit head against the configured key: `problem` is None when it verifies."""

    head: HeadState
    key: AuditKey
    problem: str | None = None


def check_audit_head(path: Path, *, allow_reanchor: bool) -> AuditCheck:
    """Can the server append to the copy's audit chain with the configured key?

    If not, every audited action would fail closed after the restore, so the restore is
    refused unless the operator asked to re-anchor the chain (entries before the restore
    are then no longer verified). The full chain is not walked here (`audit_verify` does).
    """
    try:
        key = audit_key()
    except AuditChainError as exc:
        raise RestoreRefused("audit", f"cannot be checked: the audit key is unavailable ({exc})") from exc
    with closing(connect(path)) as conn:
        row = conn.execute(f"SELECT {_AUDIT_HEAD_COLUMNS} FROM audit_audithead WHERE id = 1").fetchone()
        has_entries = conn.execute("SELECT 1 FROM audit_auditentry LIMIT 1").fetchone() is not None
    head = HeadState(*row) if row else HeadState()
    problem = _head_problem(head, key, has_entries)
    if problem and not allow_reanchor:
        raise RestoreRefused(
            "audit",
            f"has an audit chain this server cannot extend: {problem}. Set SIMPLETUNER_AUDIT_KEY to the key "
            "that signed the backup, or restore with --reanchor-audit to start a new verifiable segment "
            "(earlier entries are then no longer verified)",
        )
    return AuditCheck(head=head, key=key, problem=problem)


def _head_problem(head: HeadState, key: AuditKey, has_entries: bool) -> str | None:
    if head.is_genesis:
        return "its head checkpoint is blank while entries exist" if has_entries else None
    if head.key_id != key.key_id:
        return f"it was signed with audit key id {head.key_id or '(none)'}, the configured key is id {key.key_id}"
    if not head.verifies(key):
        return "its head checkpoint does not verify (altered)"
    return None
