"""Errors of the job store. Every refusal leaves the database exactly as it was."""

from __future__ import annotations


class StoreError(Exception):
    """A backup or restore could not be done; the message says why and what to do."""


class NotSQLiteError(StoreError):
    """The server uses PostgreSQL or MySQL: use the database's own tools (the message names them)."""


class RestoreRefused(StoreError):
    """The restore was refused before anything changed.

    `reason` is one of: not_found, not_sqlite, not_gzip, corrupt, foreign, newer, schema,
    migration_failed, audit, server_running, same_file, in_transaction.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
