"""Quotas: which apply to a user, their usage, and what a submission meets (docs/governance.md).

Every quota limits each user it applies to, with that user's own usage: a global quota every
user, a group quota each member of the group, a user quota that user. A user's effective
limit of a type is the lowest of the quotas that apply to them (a ceiling model: a group or
user quota above the global one is refused when it is set, governance.quota_services).

Usage, in UTC calendar terms:
- concurrent_jobs: the user's active jobs, leaving out jobs held for approval and jobs
  waiting in the quota queue (they hold no slot; `queue_waiting`).
- jobs_per_day: the user's jobs created since 00:00 UTC (whatever became of them).
- monthly_spend_usd: the cost of the user's jobs completed since the 1st, 00:00 UTC (a
  job's cost is known when it ends).

At submission (providers.submit, in the transaction that records the job, after locking the
owner's user row so two submissions of one user, or a submission and the queue's dispatch,
count one after the other) every applicable quota the new job would exceed acts: `block`
refuses it (403, QuotaExceeded), `queue` records it `queued` until a slot frees
(governance.queue), `warn` adds a warning. Block wins over queue, queue over warn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db.models import Q, QuerySet, Sum
from rest_framework.exceptions import APIException

from audit.services import audit_record
from cloudops import audit_events as events
from cloudops import notify
from cloudops.accounts import user_row_lock
from governance.models import Quota, QuotaAction, QuotaScope, QuotaType, quota_amount
from providers.costs import period_start
from providers.models import ACTIVE_STATUSES, Job, JobStatus

_SEVERITY = {QuotaAction.WARN: 0, QuotaAction.QUEUE: 1, QuotaAction.BLOCK: 2}


def queue_waiting(now: datetime) -> Q:
    """Jobs in the quota queue: `queued` with nothing at a provider and no live start claim
    (a dispatcher that claimed one and died leaves a claim older than
    SIMPLETUNER_SUBMIT_CLAIM_SECONDS, and the job waits again)."""
    stale = now - timedelta(seconds=settings.SIMPLETUNER_SUBMIT_CLAIM_SECONDS)
    unclaimed = Q(start_claimed_at__isnull=True) | Q(start_claimed_at__lt=stale)
    return Q(status=JobStatus.QUEUED, external_id="") & unclaimed


def holding_slot(now: datetime) -> Q:
    """Jobs that count against concurrent_jobs (see the module docstring)."""
    return Q(status__in=ACTIVE_STATUSES) & ~Q(status=JobStatus.PENDING_APPROVAL) & ~queue_waiting(now)


def quotas_for(user: User) -> QuerySet[Quota]:
    """The quotas that apply to `user` (one query: their groups are a subquery)."""
    groups = Group.objects.filter(user=user).values("name")
    mine = Q(scope=QuotaScope.USER, target=user.get_username()) | Q(scope=QuotaScope.GROUP, target__in=groups)
    return Quota.objects.filter(Q(scope=QuotaScope.GLOBAL) | mine)


def user_usage(user: User, now: datetime, types: set[str] | None = None) -> dict[str, Decimal]:
    """The user's usage of each quota type in `types` (all by default), one query each."""
    wanted = set(QuotaType) if types is None else types
    jobs = Job.objects.filter(owner=user)
    usage: dict[str, Decimal] = {}
    if QuotaType.CONCURRENT_JOBS in wanted:
        usage[QuotaType.CONCURRENT_JOBS] = Decimal(jobs.filter(holding_slot(now)).count())
    if QuotaType.JOBS_PER_DAY in wanted:
        usage[QuotaType.JOBS_PER_DAY] = Decimal(jobs.filter(created_at__gte=period_start("daily", now)).count())
    if QuotaType.MONTHLY_SPEND_USD in wanted:
        spent = jobs.filter(completed_at__gte=period_start("monthly", now)).aggregate(total=Sum("cost_usd"))
        usage[QuotaType.MONTHLY_SPEND_USD] = (spent["total"] or Decimal("0")).quantize(Decimal("0.01"))
    return usage


def effective_limits(quotas: list[Quota]) -> dict[str, Quota]:
    """{quota type: the applicable quota with the lowest limit} (the most severe on a tie)."""
    lowest: dict[str, Quota] = {}
    for quota in quotas:
        best = lowest.get(quota.quota_type)
        key = (quota.limit, -_SEVERITY[QuotaAction(quota.action)])
        if best is None or key < (best.limit, -_SEVERITY[QuotaAction(best.action)]):
            lowest[quota.quota_type] = quota
    return lowest


def percent_used(usage: Decimal, limit: Decimal) -> float:
    """Usage as a percentage of the limit; a limit of 0 is 100% used as soon as anything is."""
    if limit <= 0:
        return 100.0 if usage > 0 else 0.0
    return round(float(usage / limit * 100), 2)


def number(value: Decimal) -> int | float:
    """A JSON number: whole values as integers (job counts), others as floats (USD)."""
    return int(value) if value == value.to_integral_value() else float(value)


def quota_data(quota: Quota) -> dict[str, Any]:
    """How responses and audit entries name a quota."""
    return {
        "id": quota.pk,
        "scope": quota.scope,
        "target": quota.target,
        "quota_type": quota.quota_type,
        "limit": number(quota.limit),
        "action": quota.action,
    }


# --- At submission -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exceeded:
    """A quota the new job would take past its limit, with the usage before it."""

    quota: Quota
    usage: Decimal

    @property
    def message(self) -> str:
        q = self.quota
        who = {QuotaScope.GLOBAL: "global", QuotaScope.GROUP: f"group {q.target}", QuotaScope.USER: f"user {q.target}"}
        limit, usage = quota_amount(q.quota_type, q.limit), quota_amount(q.quota_type, self.usage)
        return f"The {who[QuotaScope(q.scope)]} {q.quota_type} quota is {limit}; your usage is {usage}."

    def as_dict(self) -> dict[str, Any]:
        return {"quota": quota_data(self.quota), "limit": number(self.quota.limit), "usage": number(self.usage)}


@dataclass
class Verdict:
    block: Exceeded | None = None
    queue: Exceeded | None = None
    warn: list[Exceeded] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [f"Quota warning: {e.message}" for e in self.warn]


class QuotaExceeded(APIException):
    """A `block` quota refused the submission; `body` names the quota, the limit and the usage."""

    status_code = 403
    default_code = "quota_exceeded"

    def __init__(self, exceeded: Exceeded) -> None:
        super().__init__(f"Quota exceeded: {exceeded.message}")
        self.body = {"detail": str(self.detail), "code": self.default_code, **exceeded.as_dict()}


def _would_exceed(quota: Quota, usage: Decimal) -> bool:
    """A job more would pass the limit (spend: the limit is already reached)."""
    if quota.quota_type == QuotaType.MONTHLY_SPEND_USD:
        return usage >= quota.limit
    return usage + 1 > quota.limit


def quota_verdict(*, owner: User, now: datetime) -> Verdict:
    """What the applicable quotas say about one more job of `owner`. Call inside the
    transaction that records it: the owner's row is locked first (see the module docstring).
    Without any quota this costs one query."""
    quotas = list(quotas_for(owner))
    verdict = Verdict()
    if not quotas:
        return verdict
    user_row_lock(owner.pk)
    usage = user_usage(owner, now, {q.quota_type for q in quotas})
    hits = [Exceeded(q, usage[q.quota_type]) for q in quotas if _would_exceed(q, usage[q.quota_type])]
    hits.sort(key=lambda e: (-_SEVERITY[QuotaAction(e.quota.action)], e.quota.limit, e.quota.pk))
    for hit in hits:
        if hit.quota.action == QuotaAction.BLOCK and verdict.block is None:
            verdict.block = hit
        elif hit.quota.action == QuotaAction.QUEUE and verdict.queue is None:
            verdict.queue = hit
        elif hit.quota.action == QuotaAction.WARN:
            verdict.warn.append(hit)
    return verdict


def quota_verdict_record(verdict: Verdict, *, owner: User, job_id: str | None, audit: dict[str, Any]) -> None:
    """Audit and announce what the quotas did to `owner`'s submission: `quota.exceeded` for a
    refusal or a queued job, `quota.warning` for each warning. Call in the submission's
    transaction (the outbox rows of notifications commit with it)."""
    acted = [(e, "block") for e in [verdict.block] if e] + [(e, "queue") for e in [verdict.queue] if e]
    for exceeded, action in acted:
        _record(events.QUOTA_EXCEEDED, exceeded, action, owner, job_id, audit)
    for exceeded in verdict.warn:
        _record(events.QUOTA_WARNING, exceeded, "warn", owner, job_id, audit)


def _record(
    event_type: str, exceeded: Exceeded, action: str, owner: User, job_id: str | None, audit: dict[str, Any]
) -> None:
    details = {**exceeded.as_dict(), "job_id": job_id}
    audit_record(
        event_type=event_type,
        request=audit.get("request"),
        actor=audit.get("actor"),
        target_type="quota",
        target_id=exceeded.quota.pk,
        action=action,
        details=details,
    )
    notify.notify(event_type, {"user": owner.username, "action": action, **details}, owner_id=owner.pk)


def quota_overview(user: User, now: datetime) -> list[dict[str, Any]]:
    """The user's effective limit and usage of every quota type (limit None: no quota)."""
    effective = effective_limits(list(quotas_for(user)))
    usage = user_usage(user, now)
    rows = []
    for quota_type in QuotaType:
        quota = effective.get(quota_type)
        used = usage[quota_type]
        rows.append(
            {
                "quota_type": quota_type.value,
                "limit": None if quota is None else number(quota.limit),
                "action": None if quota is None else quota.action,
                "quota_id": None if quota is None else quota.pk,
                "scope": None if quota is None else quota.scope,
                "usage": number(used),
                "percent_used": None if quota is None else percent_used(used, quota.limit),
            }
        )
    return rows
