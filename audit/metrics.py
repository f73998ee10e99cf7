"""The audit app's Prometheus metric sources (settings.METRICS_SOURCES names them).

- audit: audit log activity, from the chain's signed head (no table scan), and the chain's
  standing from the recorded verifications (a scrape never verifies the chain itself).
- health: when the last backup was written, from its `backup.created` audit entry.
  `manage.py backup` (and `JobStore().backup()`) append that entry to the shared database right
  after the backup file is published, so every process, on any host, reports the same time,
  wherever the file went. A backup whose audit entry could not be written (the command warns)
  is not counted; a copy made outside cloudops (a cron `sqlite3 .backup` script, `pg_dump`) is
  not known at all, so without a `backup.created` entry the metric is absent, not zero.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from audit.selectors import audit_totals, chain_standing, latest_event_at
from cloudops import audit_events as events


def collect_activity() -> Iterator[Metric]:
    totals = audit_totals()
    # The chain's last sequence: entries ever written. Retention never lowers it, so it is a
    # true counter; the entries still retained are in GET /api/audit/stats.
    yield CounterMetricFamily(
        "simpletuner_audit_log_entries_total",
        "Audit log entries written (retention does not lower it).",
        value=totals.written,
    )
    yield GaugeMetricFamily(
        "simpletuner_audit_log_entries_24h", "Audit log entries written in the last 24 hours.", value=totals.last_24h
    )


def collect_verification() -> Iterator[Metric]:
    standing = chain_standing()
    if standing is None:
        # Never verified: no value rather than a made-up "verified".
        return
    yield GaugeMetricFamily(
        "simpletuner_audit_chain_verified",
        "1 when the latest whole-chain verification passed and none has failed since, else 0.",
        value=1 if standing.verified else 0,
    )
    if standing.full_verified_at is not None:
        yield GaugeMetricFamily(
            "simpletuner_audit_chain_full_verification_timestamp_seconds",
            "Unix time the latest whole-chain verification finished (passed or not).",
            value=standing.full_verified_at.timestamp(),
        )


def collect_last_backup() -> Iterator[Metric]:
    written = latest_event_at(events.BACKUP_CREATED)
    if written is None:
        return
    yield GaugeMetricFamily(
        "simpletuner_backup_last_success_timestamp_seconds",
        "Unix time the last backup made by manage.py backup was written.",
        value=written.timestamp(),
    )
