#!/usr/bin/env python
"""The cost of a Prometheus scrape with a million jobs and a million audit entries (SQLite).

Seeds a fresh SQLite database in a temporary SIMPLETUNER_HOME (raw `executemany` inserts:
the ORM would take minutes), enables the `full` template and a cost limit, then measures

- each category's sources computed from scratch (what the metrics thread pays per refresh),
- a worker pass (flush + refresh of the cached aggregates),
- full scrapes through the Django stack (middleware, view, rendering) as a server serves
  them: warm cache, the steady state with the metrics thread running,
- full scrapes with caching off (SIMPLETUNER_METRICS_CACHE_SECONDS=0), for comparison.

    .venv/bin/python bench/metrics_scrape.py                  # 1M jobs, 1M audit entries
    .venv/bin/python bench/metrics_scrape.py --jobs 100000 --audit 100000

The audit rows are not chained (their MACs are not computed): the metrics read only the
head and the timestamp index; bench/audit_chain.py measures the chain itself.
Figures are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BATCH = 20_000


def setup_django(home: str) -> None:
    os.environ["SIMPLETUNER_HOME"] = home
    os.environ["DJANGO_SETTINGS_MODULE"] = "cloudops.settings"
    os.environ.setdefault("SIMPLETUNER_AUDIT_KEY", "bench-audit-key-" + "0" * 32)
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ["SIMPLETUNER_LOG_LEVEL"] = "warning"
    os.environ["ALLOWED_HOSTS"] = "testserver"
    import django

    django.setup()


def insert(table: str, columns: list[str], rows) -> None:  # type: ignore[no-untyped-def]
    from django.db import connection, transaction

    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    batch = []
    with transaction.atomic(), connection.cursor() as cursor:
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)


def seed_jobs(n: int, owner_id: int, now: datetime) -> None:
    """Mostly finished jobs over the last 90 days, a few still active, on two providers."""
    columns = [
        "id", "name", "owner_id", "provider", "external_id", "status", "hardware", "config", "dataloader_config",
        "dataset", "created_at", "updated_at", "started_at", "completed_at", "run_seconds", "cost_usd", "error",
        "logs", "progress", "output_url", "runner", "upload_token", "upload_objects", "upload_bytes",
        "request_fingerprint",
    ]  # fmt: skip
    statuses = ["completed"] * 90 + ["failed"] * 5 + ["cancelled"] * 3 + ["running", "pending"]

    def rows():  # type: ignore[no-untyped-def]
        for i in range(n):
            status = statuses[i % len(statuses)]
            created = now - timedelta(seconds=90 * 86400 * (n - i) / n)
            done = status in ("completed", "failed", "cancelled")
            run = 600.0 + i % 3000 if done else None
            yield (
                f"job-{i:020d}", "", owner_id, "replicate" if i % 2 else "local", "", status, "local",
                '{"max_train_steps": 1000}', "[]", "", created, created, created,
                created + timedelta(seconds=run) if done else None, run,
                f"{(run or 0) * 0.000725:.6f}", "", "step 1000/1000 done", "{}", "", "{}", f"STU{i:017d}", 0, 0, "",
            )  # fmt: skip

    insert("providers_job", columns, rows())


def seed_audit(n: int, now: datetime) -> None:
    """N entries over the last 10 days after the ones already there; the head moves to the end."""
    from audit.models import AuditHead

    head = AuditHead.objects.get(pk=1)
    first = head.last_sequence + 1
    columns = [
        "sequence", "timestamp", "event_type", "actor_username", "actor_api_key", "actor_ip", "target_type",
        "target_id", "action", "details", "mac",
    ]  # fmt: skip
    rows = (
        (first + i, now - timedelta(seconds=10 * 86400 * (n - i) / n), "job.status_changed", "bench", "",
         "10.0.0.1", "job", str(i), "", '{"n": 1}', "0" * 64)
        for i in range(n)
    )  # fmt: skip
    insert("audit_auditentry", columns, rows)
    AuditHead.objects.filter(pk=1).update(last_sequence=first + n - 1)


def seed(jobs: int, audit: int) -> None:
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from cloudops.auditing import Actor
    from cloudops.metrics.services import metrics_apply_template
    from providers.config import provider_config_get, provider_config_update

    call_command("migrate", verbosity=0)
    owner = get_user_model().objects.create_user("bench", is_staff=True)
    metrics_apply_template(name="full", actor=Actor(username="bench"))
    for name in ("local", "replicate"):
        provider_config_update(
            provider_config=provider_config_get(name),
            changes={"cost_limit_enabled": True, "cost_limit_amount": Decimal("1000")},
            actor=Actor(username="bench"),
        )
    now = datetime.now(UTC)
    started = time.perf_counter()
    seed_jobs(jobs, owner.pk, now)
    seed_audit(audit, now)
    print(f"seeded {jobs:,} jobs and {audit:,} audit entries in {time.perf_counter() - started:.0f} s", flush=True)


def timings(fn: Callable[[], object], repeat: int) -> list[float]:
    result = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        result.append((time.perf_counter() - started) * 1000)
    return result


def report(label: str, ms: list[float]) -> None:
    print(f"{label:<48} median {statistics.median(ms):>8.1f} ms   max {max(ms):>8.1f} ms   (n={len(ms)})", flush=True)


def measure_http_counting() -> None:
    """What counting costs a request (in memory), and a flush of many endpoints (the database)."""
    from cloudops.metrics.http import http_flush, http_record

    endpoints = [f"GET_/api/bench/route{i}" for i in range(50)]
    calls = 200_000
    started = time.perf_counter()
    for i in range(calls):
        http_record(endpoints[i % 50], 200 if i % 10 else 404, 1.5)
    per_call_us = (time.perf_counter() - started) / calls * 1e6
    print(f"{'http_record per request (in memory)':<48} {per_call_us:>8.2f} us", flush=True)
    report("http_flush of 100 endpoint/status keys", timings(lambda: http_flush(), 1))
    for i in range(calls // 10):
        http_record(endpoints[i % 50], 200 if i % 10 else 404, 1.5)
    report("http_flush again (rows exist: UPDATEs only)", timings(lambda: http_flush(), 1))


def measure(repeat: int) -> None:
    from django.conf import settings
    from django.core.cache import cache
    from django.test import Client

    from cloudops.metrics.categories import CATEGORIES
    from cloudops.metrics.exposition import category_sources
    from cloudops.metrics.worker import metrics_worker_pass

    client = Client()

    def scrape() -> None:
        response = client.get("/api/cloud/metrics/prometheus")
        assert response.status_code == 200 and b"simpletuner_jobs_total" in response.content, response.content

    settings.SIMPLETUNER_METRICS_CACHE_SECONDS = 0
    for category in CATEGORIES:
        for source in category_sources(category):
            report(f"source {category} (uncached)", timings(lambda s=source: list(s()), 3))
    report("full scrape, caching off", timings(scrape, 3))
    settings.SIMPLETUNER_METRICS_CACHE_SECONDS = 30

    def refresh() -> None:
        cache.clear()  # what a pass costs when the aggregates are due
        metrics_worker_pass(refresh=True)

    report("worker pass (flush + recompute aggregates)", timings(refresh, 3))
    report("full scrape, warm cache (server steady state)", timings(scrape, repeat))
    print(client.get("/api/cloud/metrics/prometheus").content.decode().split("# HELP simpletuner_http")[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--audit", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as home:
        setup_django(home)
        seed(args.jobs, args.audit)
        measure_http_counting()
        measure(args.repeat)


if __name__ == "__main__":
    main()
