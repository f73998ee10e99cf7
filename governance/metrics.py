"""The governance app's Prometheus metric sources (settings.METRICS_SOURCES names them).

- approvals: approval requests per status, read from the shared database on every scrape, so
  any process answers for the whole instance (a decision made by another process, or on
  another host, shows at once). One grouped count over the `approval_status_created` index:
  requests are few next to jobs, so it is not cached.

- approvals (also): simpletuner_quota_percent_used{scope,target,quota_type}, one series per
  quota: the highest usage among the users the quota applies to, in percent of its limit
  (above 100 when a `warn` quota is passed; a limit of 0 reads 100 once anything is used).

A request past its `expires_at` counts as `pending` until the expiry loop (every
SIMPLETUNER_SYNC_INTERVAL, governance.approvals.approvals_expire) marks it `expired`: the
metric reports what the database says, never a guess.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import User
from django.db.models import Count, Sum
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from governance.models import ApprovalRequest, ApprovalStatus, Quota, QuotaScope, QuotaType
from governance.quotas import holding_slot, percent_used
from providers.costs import period_start
from providers.models import Job


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


# --- Quotas --------------------------------------------------------------------------------------


def _usage_by_owner(quota_type: str, now: datetime) -> dict[int, Decimal]:
    """{user id: usage} of one quota type, for every user with any (one grouped query)."""
    jobs = Job.objects.order_by().values("owner_id")
    if quota_type == QuotaType.CONCURRENT_JOBS:
        rows = jobs.filter(holding_slot(now)).annotate(n=Count("*"))
    elif quota_type == QuotaType.JOBS_PER_DAY:
        rows = jobs.filter(created_at__gte=period_start("daily", now)).annotate(n=Count("*"))
    else:
        rows = jobs.filter(completed_at__gte=period_start("monthly", now)).annotate(n=Sum("cost_usd"))
    return {row["owner_id"]: Decimal(row["n"] or 0) for row in rows}


def _members(quotas: list[Quota]) -> dict[tuple[str, str], set[int]]:
    """{(scope, target): user ids} for the group and user quotas (one query each kind)."""
    found: dict[tuple[str, str], set[int]] = {}
    groups = {q.target for q in quotas if q.scope == QuotaScope.GROUP}
    users = {q.target for q in quotas if q.scope == QuotaScope.USER}
    if groups:
        through = User.groups.through.objects.filter(group__name__in=groups).values_list("group__name", "user_id")
        for name, user_id in through:
            found.setdefault((QuotaScope.GROUP, name), set()).add(user_id)
    if users:
        for name, user_id in User.objects.filter(username__in=users).values_list("username", "pk"):
            found[(QuotaScope.USER, name)] = {user_id}
    return found


def quota_percents(now: datetime) -> list[tuple[Quota, float]]:
    """Every quota with the highest usage, in percent of its limit, among the users it
    applies to (every user for a global quota)."""
    quotas = list(Quota.objects.all())
    if not quotas:
        return []
    usage = {t: _usage_by_owner(t, now) for t in {q.quota_type for q in quotas}}
    members = _members(quotas)
    result = []
    for quota in quotas:
        by_owner = usage[quota.quota_type]
        if quota.scope == QuotaScope.GLOBAL:
            highest = max(by_owner.values(), default=Decimal(0))
        else:
            highest = max(
                (by_owner.get(u, Decimal(0)) for u in members.get((quota.scope, quota.target), ())), default=Decimal(0)
            )
        result.append((quota, percent_used(highest, quota.limit)))
    return result


def collect_quotas() -> Iterator[Metric]:
    # Read from the shared database on every scrape, like the approvals: quotas are few, and
    # each usage is one grouped query over the job indexes.
    family = GaugeMetricFamily(
        "simpletuner_quota_percent_used",
        "Highest usage of a quota among the users it applies to, in percent of its limit.",
        labels=["scope", "target", "quota_type"],
    )
    for quota, percent in quota_percents(timezone.now()):
        family.add_metric([quota.scope, quota.target, quota.quota_type], percent)
    yield family
