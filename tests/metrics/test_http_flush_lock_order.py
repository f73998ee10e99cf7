"""Several processes flushing their HTTP counters take the rows' locks in one order.

The soak run (bench/soak.py) found it: each process's buffer is in the order its own requests
came, so on PostgreSQL one process's flush held row A and waited for row B while another held
B and waited for A, and PostgreSQL killed one of them as a deadlock. The flush now updates
rows in sorted key order, so two flushes queue on the first row they share instead.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cloudops.metrics.http import http_flush, http_record
from cloudops.metrics.models import HttpRouteStat

FIRST = ("GET_/api/cloud/jobs", 200)  # sorts before SECOND
SECOND = ("POST_/api/cloud/jobs/submit", 201)


def _seed() -> None:
    for endpoint, status in (FIRST, SECOND):
        HttpRouteStat.objects.create(endpoint=endpoint, status=status, requests=1, latency_ms_sum=1.0)


def _record_in_reverse() -> None:
    """This process's buffer holds SECOND before FIRST (its requests came in that order)."""
    http_record(*SECOND, 5.0)
    http_record(*FIRST, 5.0)


@pytest.mark.django_db
def test_the_flush_updates_rows_in_sorted_key_order_whatever_order_requests_came_in() -> None:
    _seed()
    _record_in_reverse()
    with CaptureQueriesContext(connection) as queries:
        assert http_flush() == 2
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")]
    order = [next(i for i, key in enumerate((FIRST, SECOND)) if key[0] in sql) for sql in updates]
    assert order == [0, 1], updates


def _backend_waiting_for_a_lock(other: psycopg.Connection, pid: int) -> bool:
    row = other.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row is not None and row[0] == "Lock"


@pytest.mark.django_db(transaction=True)
def test_two_processes_flushing_at_once_on_postgresql_wait_for_each_other_instead_of_deadlocking() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks taken in a different order deadlock on PostgreSQL (SQLite has one writer lock)")
    _seed()
    s = connection.settings_dict
    params = {"host": s["HOST"] or "127.0.0.1", "port": s["PORT"] or 5432, "user": s["USER"], "dbname": s["NAME"]}
    # The other process: flushing in sorted order, it holds FIRST's row and will want SECOND's.
    with psycopg.connect(**params) as other, psycopg.connect(**params, autocommit=True) as watcher:
        other.execute("UPDATE metrics_httproutestat SET requests = requests + 1 WHERE endpoint = %s", (FIRST[0],))
        _record_in_reverse()
        outcome: dict[str, object] = {}
        flush_pid: list[int] = []

        def flush() -> None:
            try:
                flush_pid.append(connection.cursor().connection.info.backend_pid)
                outcome["written"] = http_flush()
            except Exception as exc:
                outcome["error"] = exc
            finally:
                connection.close()

        thread = threading.Thread(target=flush)
        thread.start()
        # Wait (without a time limit on the outcome) until this process's flush is blocked
        # behind the other's lock: before the fix it holds SECOND's row by then.
        while not flush_pid or not _backend_waiting_for_a_lock(watcher, flush_pid[0]):
            assert thread.is_alive(), outcome
            time.sleep(0.05)
        # The other process goes on to SECOND's row: a deadlock if this flush holds it.
        other.execute("UPDATE metrics_httproutestat SET requests = requests + 1 WHERE endpoint = %s", (SECOND[0],))
        other.commit()
        thread.join()
    assert outcome == {"written": 2}
    counts = dict(HttpRouteStat.objects.values_list("endpoint", "requests"))
    assert counts == {FIRST[0]: 3, SECOND[0]: 3}
