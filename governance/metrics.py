"""The governance app's Prometheus metric source (settings.METRICS_SOURCES names it).

- approvals: approval requests per status, read from the shared database on every scrape, so
  any process answers for the whole instance (a decision made by another process, or on
  another host, shows at once). One grouped count over the `approval_status_created` index:
  requests are few next to jobs, so it is not cached.

A request past its `expires_at` counts as `pending` until the expiry loop (every
SIMPLETUNER_SYNC_INTERVAL, governance.approvals.approvals_expire) marks it `expired`: the
metric reports what the database says, never a guess.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from governance.models import ApprovalRequest, ApprovalStatus


def approval_counts() -> dict[str, int]:
    """{status: requests}, every status listed (0 is a real count)."""
    counts = {status.value: 0 for status in ApprovalStatus}
    rows = ApprovalRequest.objects.order_by().values("status").annotate(n=Count("*"))
    for row in rows:
        counts[row["status"]] = row["n"]
    return counts


def collect_approvals() -> Iterator[Metric]:
    counts = approval_counts()
    yield GaugeMetricFamily(
        "simpletuner_approval_requests_pending",
        "Approval requests waiting for a decision.",
        value=counts[ApprovalStatus.PENDING],
    )
    # A gauge, not a counter: a pending request moves to another status when decided.
    by_status = GaugeMetricFamily(
        "simpletuner_approval_requests_by_status", "Approval requests in each status.", labels=["status"]
    )
    for status, n in counts.items():
        by_status.add_metric([status], n)
    yield by_status
