"""Persistent connections for the database backend's checks.

Under ASGI, Django runs each request's sync code in a thread of its own and closes that
thread's connections when the request ends, so a check on an otherwise database-free request
would open a connection (on SQLite: the file, three PRAGMAs, Django's SQL functions; on
PostgreSQL/MySQL: a TCP login) and close it again, costing more than the request itself. The
checks therefore borrow from a small pool of Django connections that stay open, one per
concurrent check. Each check is its own short transaction (`transaction_cursor`) or a single
statement that commits by itself (`autocommit_cursor`), so a pooled connection holds no lock
between checks. Callers already inside a transaction on the state database keep using
Django's connection (so tests and atomic views see their own uncommitted rows).

A pooled check runs on the driver's own cursor, inside the connection's error wrapper (so
failures are still Django's DatabaseError): Django's cursor wrapper rewrites every statement
for SQLite's paramstyle and wraps each call, which cost a check about as much as SQLite's
work. Statements for it use the driver's paramstyle (`param_style`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from django.db import DatabaseError, connections

# At most this many connections per process and database; further checks wait for one (a
# check holds it for a few statements), so a burst of threads never exhausts the server's
# max_connections. SQLite has one writer, and a check takes the write lock first: with more
# than one connection the others only wait inside SQLite's busy handler (sleep and retry),
# which cost a request more than the check itself (bench/ratelimit.py: +66% of the cheapest
# request's CPU with 8 connections, +27% with one).
POOL_SIZE = 8
SQLITE_POOL_SIZE = 1
WAIT_SECONDS = 10.0


class Slots(Protocol):
    """threading.Lock or BoundedSemaphore."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


# Per alias: idle connections, and the slots that bound how many are in use.
_pools: dict[str, queue.SimpleQueue[Any]] = {}
_slots: dict[str, Slots] = {}
_setup = threading.Lock()


def param_style(sql: str, vendor: str) -> str:
    """`sql` written with %s placeholders, in the driver's paramstyle (SQLite's is qmark)."""
    return sql.replace("%s", "?") if vendor == "sqlite" else sql


def _begin_statement(wrapper: Any) -> str:
    # BEGIN IMMEDIATE takes SQLite's write lock first, so the read below is already locked.
    return {"sqlite": "BEGIN IMMEDIATE", "mysql": "START TRANSACTION"}.get(wrapper.vendor, "BEGIN")


@contextmanager
def transaction_cursor(alias: str) -> Iterator[Any]:
    """A cursor inside a transaction that commits on success and rolls back on error."""
    with _borrowed(alias) as pool:
        if pool is None:
            yield from _in_callers_transaction(alias)
        else:
            yield from _in_transaction(pool, alias)


@contextmanager
def autocommit_cursor(alias: str) -> Iterator[Any]:
    """A cursor whose every statement commits by itself (the database backend's one-statement
    check, atomic on its own); in a caller's transaction, a savepoint in it as above."""
    with _borrowed(alias) as pool:
        if pool is None:
            yield from _in_callers_transaction(alias)
        else:
            yield from _autocommit(pool, alias)


def _in_callers_transaction(alias: str) -> Iterator[Any]:
    # The caller's transaction: a savepoint in it, on its own connection.
    from django.db import transaction

    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        yield cursor


@contextmanager
def _borrowed(alias: str) -> Iterator[queue.SimpleQueue[Any] | None]:
    """The alias's pool with one of its slots held, or None inside a caller's transaction."""
    django_connection = connections[alias]
    if django_connection.in_atomic_block:
        yield None
        return
    pool, slots = _pools.get(alias), _slots.get(alias)
    if pool is None or slots is None:
        pool, slots = _new_pool(alias, django_connection.vendor)
    if not slots.acquire(timeout=WAIT_SECONDS):
        raise DatabaseError(f"no rate-limit database connection free within {WAIT_SECONDS:g} s")
    try:
        yield pool
    finally:
        slots.release()


def _new_pool(alias: str, vendor: str) -> tuple[queue.SimpleQueue[Any], Slots]:
    size = SQLITE_POOL_SIZE if vendor == "sqlite" else POOL_SIZE
    # One slot is a plain lock: its waits are one futex in C, where a semaphore's go through
    # Python's Condition (a check per request made that a measurable part of SQLite's cost).
    slots: Slots = threading.Lock() if size == 1 else threading.BoundedSemaphore(size)
    with _setup:
        return _pools.setdefault(alias, queue.SimpleQueue()), _slots.setdefault(alias, slots)


def _new(alias: str) -> Any:
    wrapper = connections.create_connection(alias)
    wrapper.inc_thread_sharing()  # handed from thread to thread, one user at a time
    return wrapper


def _begun(pool: queue.SimpleQueue[Any], alias: str) -> tuple[Any, Any]:
    """A connection and cursor with a transaction begun. A pooled connection that fails here
    went stale (e.g. the database restarted): it is replaced once, so an outage that is over
    never fails a check."""
    try:
        wrapper, reused = pool.get_nowait(), True
    except queue.Empty:
        wrapper, reused = _new(alias), False
    try:
        return wrapper, _begin(wrapper)
    except DatabaseError:
        wrapper.close()
        if not reused:
            raise
    wrapper = _new(alias)
    return wrapper, _begin(wrapper)


def _begin(wrapper: Any) -> Any:
    """The driver's cursor on `wrapper`'s connection, with a transaction begun."""
    with wrapper.wrap_database_errors:
        wrapper.ensure_connection()
        cursor = wrapper.connection.cursor()
        cursor.execute(_begin_statement(wrapper))
    return cursor


def _in_transaction(pool: queue.SimpleQueue[Any], alias: str) -> Iterator[Any]:
    wrapper, cursor = _begun(pool, alias)
    broken = False
    try:
        with wrapper.wrap_database_errors:
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
    except DatabaseError:
        broken = True  # broken or unknown state: never reused
        raise
    finally:
        cursor.close()  # before the connection: closing it after raises sqlite3's ProgrammingError
        if broken:
            wrapper.close()
        else:
            pool.put(wrapper)  # committed, or rolled back after the caller's own error


def _autocommit(pool: queue.SimpleQueue[Any], alias: str) -> Iterator[Any]:
    """A pooled connection's driver cursor, in autocommit (no BEGIN: each statement commits)."""
    try:
        wrapper = pool.get_nowait()
    except queue.Empty:
        wrapper = _new(alias)
    try:
        with wrapper.wrap_database_errors:
            wrapper.ensure_connection()
            cursor = wrapper.connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
    except DatabaseError:
        wrapper.close()  # broken or unknown state: never reused
        raise
    pool.put(wrapper)


def close_pooled_connections() -> None:
    """Close every idle pooled connection (tests call this before dropping their databases)."""
    for pool in _pools.values():
        while True:
            try:
                pool.get_nowait().close()
            except queue.Empty:
                break
