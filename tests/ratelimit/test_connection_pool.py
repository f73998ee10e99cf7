"""The database backend's pooled connections: reused between checks, replaced when stale."""

from __future__ import annotations

import pytest
from django.db import connection

from cloudops.ratelimit.backends import sqlpool
from cloudops.ratelimit.backends.database import DatabaseBackend
from tests.ratelimit.conftest import FakeClock

pytestmark = pytest.mark.django_db(transaction=True)


def test_checks_outside_a_transaction_reuse_one_pooled_connection(clock: FakeClock) -> None:
    backend = DatabaseBackend()
    for _ in range(5):
        backend.hit("pool:k", limit=10, window=60, now=clock.now)
    pool = sqlpool._pools["default"]
    assert pool.qsize() == 1
    assert backend.hit("pool:k", limit=10, window=60, now=clock.now, record=False).count == 5


def kill_other_sessions() -> int:
    """Terminate this test database's other sessions (the pooled ones) on the server."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return len(cursor.fetchall())
        cursor.execute("SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()")
        ids = [row[0] for row in cursor.fetchall()]
        for session in ids:
            cursor.execute(f"KILL {int(session)}")
        return len(ids)


def test_a_pooled_connection_the_server_dropped_is_replaced_without_failing_a_check(clock: FakeClock) -> None:
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no server to drop connections (runs on PostgreSQL and MariaDB)")
    backend = DatabaseBackend()
    assert backend.hit("stale:k", limit=10, window=60, now=clock.now).allowed
    assert kill_other_sessions() >= 1
    decision = backend.hit("stale:k", limit=10, window=60, now=clock.now)
    assert decision.allowed and decision.count == 2
