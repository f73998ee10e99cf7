from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT, django_env, spawn_django, wait_all

pytestmark = pytest.mark.slow

WORKERS = 4
TRANSACTIONS = 60

# Each transaction reads, then writes: the pattern that raises "database is locked" under
# SQLite's default DEFERRED mode when two connections try to upgrade their locks at once.
WRITER = f"""
from django.db import transaction
from audit.models import AuditHead

for _ in range({TRANSACTIONS}):
    with transaction.atomic():
        head, _ = AuditHead.objects.get_or_create(pk=1)
        AuditHead.objects.filter(pk=1).update(last_sequence=head.last_sequence + 1)
print("ok")
"""


@pytest.fixture
def fresh_sqlite(tmp_path: Path) -> dict[str, str]:
    env = django_env(DATABASE_URL=f"sqlite:///{tmp_path / 'jobs.db'}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    return env


def test_concurrent_writer_processes_never_see_database_is_locked(fresh_sqlite: dict[str, str]) -> None:
    workers = [spawn_django(WRITER, env=fresh_sqlite) for _ in range(WORKERS)]
    assert wait_all(workers) == ["ok\n"] * WORKERS
    # No lost update either: IMMEDIATE transactions serialise the read-modify-write.
    reader = spawn_django(
        "from audit.models import AuditHead; print(AuditHead.objects.get(pk=1).last_sequence)", env=fresh_sqlite
    )
    assert wait_all([reader]) == [f"{WORKERS * TRANSACTIONS}\n"]


def test_connections_use_wal_normal_sync_and_a_busy_timeout(fresh_sqlite: dict[str, str]) -> None:
    probe = spawn_django(
        """
        from django.db import connection
        with connection.cursor() as c:
            print(*(c.execute(f"PRAGMA {p}").fetchone()[0] for p in ("journal_mode", "synchronous", "busy_timeout")))
        """,
        env=fresh_sqlite,
    )
    # synchronous=1 is NORMAL; the busy timeout is in milliseconds.
    assert wait_all([probe]) == ["wal 1 30000\n"]
