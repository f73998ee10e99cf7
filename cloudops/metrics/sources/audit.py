"""audit: audit log activity, from the chain's signed head (no table scan)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from audit.selectors import audit_totals


def collect() -> Iterator[Metric]:
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
