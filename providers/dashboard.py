"""What the admin's operations dashboard shows about jobs, spend and webhooks (cloudops.admin_site).

Each panel is a handful of aggregate queries, whatever the size of the tables: jobs per day
is one grouped query, spend is the cost-limit selector the API and the submit check use,
webhook traffic is read from the audit trail and the replay records. Nothing here is cached:
the dashboard is opened by a person, not scraped.

Where the webhook figures come from, and what they can and cannot say:
- Rejections (allowlist, size, signature, secret unavailable) are audited as `webhook_rejected`
  in the database, so every server process's rejections are counted, exactly.
- Refusals by the rate limiter are audited as `rate_limited` only for an IP's first refusal in
  a window (cloudops.ratelimit.violations); the repeats are only in the shared counter
  simpletuner_rate_limit_violations_total, which is not per path. The dashboard counts the
  audited ones and says so.
- Accepted deliveries leave no durable record of their own: the replay record
  (WebhookDelivery) expires about ten minutes after receipt and the sync pass deletes it, and a
  delivery without a webhook-id has none. A delivery that changes a job's status is audited
  (`job.status_changed` with source `webhook:<provider>`), so "status changes applied" is the
  24-hour figure, and the replay records not yet expired give the deliveries of the last ten
  minutes or so (replay_minutes()).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

from django.conf import settings
from django.db.models import Count, Q
from django.db.models.fields.json import KT

from audit.selectors import audit_entries
from cloudops import audit_events as events
from cloudops.charts import Chart, Series, meter, stacked_bars
from providers.admin_display import STATUS_COLOURS
from providers.config import provider_config_list
from providers.costs import APPROACHING_PERCENT, CostLimitStatus, cost_limit_status
from providers.models import Job, JobStatus, WebhookDelivery
from providers.registry import provider_names
from providers.webhooks.signing import TOLERANCE_SECONDS

DAYS = 7
WEBHOOK_WINDOW = timedelta(hours=24)
WEBHOOK_PATH = "/api/webhooks/"
OTHER = "(other paths)"
FAILED_JOBS_SHOWN = 10


# --- Jobs per day ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobDay:
    day: date
    by_status: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def day_starts(*, now: datetime, days: int, tz: tzinfo) -> list[datetime]:
    """Midnight in `tz` of each of the last `days` days (today last), then tomorrow's midnight.

    Computed here, as wall-clock midnights, rather than by the database: a day in a time zone
    with daylight saving is 23 or 25 hours long, and MariaDB converts time zones only when its
    zone tables are loaded."""
    today = now.astimezone(tz).date()
    return [datetime.combine(today - timedelta(days=days - 1 - i), time.min, tzinfo=tz) for i in range(days + 1)]


def jobs_per_day(*, now: datetime, tz: tzinfo, days: int = DAYS) -> list[JobDay]:
    """Jobs created on each of the last `days` days in `tz`, by their status now.

    One query: grouped by status, one filtered count per day, over the created_at range
    (the job_status_keyset index)."""
    starts = day_starts(now=now, days=days, tz=tz)
    per_day = {
        f"d{i}": Count("pk", filter=Q(created_at__gte=starts[i], created_at__lt=starts[i + 1])) for i in range(days)
    }
    rows = (
        Job.objects.order_by()
        .filter(created_at__gte=starts[0], created_at__lt=starts[-1])
        .values("status")
        .annotate(**per_day)
    )
    counts: dict[int, dict[str, int]] = {i: dict.fromkeys(JobStatus.values, 0) for i in range(days)}
    for row in rows:
        for i in range(days):
            counts[i][row["status"]] = row[f"d{i}"]
    return [JobDay(day=starts[i].date(), by_status=counts[i]) for i in range(days)]


# --- Spend against the cost limit -----------------------------------------------------------------


@dataclass(frozen=True)
class ProviderSpend:
    name: str
    display_name: str
    enabled: bool
    limit: CostLimitStatus

    @property
    def over(self) -> bool:
        return self.limit.enabled and self.limit.spent_usd >= self.limit.amount_usd


def spend_per_provider(*, now: datetime) -> list[ProviderSpend]:
    """Each provider's spend in its current cost-limit period (a limit switched off still has
    a period, so its spend is shown too), read as the API and the submit check read it."""
    return [
        ProviderSpend(
            name=config.name,
            display_name=str(config),
            enabled=config.enabled,
            limit=cost_limit_status(config, now=now),
        )
        for config in provider_config_list()
    ]


# --- Webhook traffic --------------------------------------------------------------------------------


@dataclass
class WebhookTraffic:
    provider: str
    applied: int = 0  # status changes applied by deliveries (audited), last 24 h
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count, last 24 h
    recent: int = 0  # deliveries whose replay record has not expired (the last replay_minutes())

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def webhook_traffic(*, now: datetime) -> list[WebhookTraffic]:
    """Per provider: status changes applied, rejections by reason and recent deliveries."""
    since = now - WEBHOOK_WINDOW
    traffic = {name: WebhookTraffic(name) for name in provider_names()}

    def of(provider: str) -> WebhookTraffic:
        # A refused request may name any path: those of no provider share one row.
        return traffic[provider] if provider in traffic else traffic.setdefault(OTHER, WebhookTraffic(OTHER))

    # One read of the retention bound for the three audit queries.
    recent_entries = audit_entries(since=since).order_by()
    applied = recent_entries.filter(event_type=events.JOB_STATUS_CHANGED, details__source__startswith="webhook:")
    for source, n in applied.values_list(KT("details__source")).annotate(n=Count("*")):
        of(source.split(":")[1]).applied += n
    rejected = recent_entries.filter(event_type=events.WEBHOOK_REJECTED)
    for provider, reason, n in rejected.values_list("target_id", KT("details__reason")).annotate(n=Count("*")):
        _add(of(provider).rejected, reason or "unknown", n)
    limited = recent_entries.filter(event_type=events.RATE_LIMITED, target_id__startswith=WEBHOOK_PATH)
    for path, n in limited.values_list("target_id").annotate(n=Count("*")):
        _add(of(path.removeprefix(WEBHOOK_PATH).strip("/")).rejected, "rate_limited", n)
    # Replay records not yet expired, whether or not the sync pass has pruned the others.
    delivered = WebhookDelivery.objects.order_by().filter(expires_at__gt=now).values_list("provider")
    for provider, n in delivered.annotate(n=Count("*")):
        of(provider).recent = n
    return sorted(traffic.values(), key=lambda t: t.provider)


def replay_minutes() -> int:
    """How long a delivery keeps its replay record (providers.webhooks.apply.replay_expiry), at least."""
    return (TOLERANCE_SECONDS + settings.SIMPLETUNER_WEBHOOK_REPLAY_MARGIN) // 60


def _add(counts: dict[str, int], key: str, n: int) -> None:
    counts[key] = counts.get(key, 0) + n


# --- Failed jobs --------------------------------------------------------------------------------------


def recent_failed_jobs(*, limit: int = FAILED_JOBS_SHOWN) -> list[Job]:
    """The newest failed jobs with their errors, in the job list's order (the status index)."""
    return list(
        Job.objects.filter(status=JobStatus.FAILED)
        .select_related("owner")
        .only("id", "name", "provider", "error", "created_at", "completed_at", "owner__username")
        .order_by("-created_at", "-id")[:limit]
    )


# --- Charts -------------------------------------------------------------------------------------------

# The list's badge colours (providers.admin_display), except that a stacked bar needs each
# status distinct: the badges give uploading and queued one colour (both are waiting), and
# pending and cancelled two greys too close to tell apart in a bar.
STATUS_CHART_COLOURS: dict[str, str] = {status.value: colours[0] for status, colours in STATUS_COLOURS.items()} | {
    JobStatus.PENDING: "#94a3b8",
    JobStatus.UPLOADING: "#d97706",
    JobStatus.QUEUED: "#a16207",
}
WITHIN_LIMIT, NEAR_LIMIT, OVER_LIMIT = "#15803d", "#b45309", "#b91c1c"
APPLIED, REJECTED = "#1d4ed8", "#b91c1c"


def jobs_chart(days: list[JobDay], *, tz_name: str) -> Chart:
    series = [Series(status, status, STATUS_CHART_COLOURS[status]) for status in JobStatus.values]
    return stacked_bars(
        chart_id="jobs-per-day",
        title=f"Jobs created per day, last {len(days)} days ({tz_name}), by status now",
        description=", ".join(f"{d.day:%a %d %b}: {d.total}" for d in days),
        categories=[(f"{d.day:%a %d}", d.by_status) for d in days],
        series=series,
        width=640,
    )


def spend_meter(spend: ProviderSpend) -> Chart:
    limit = spend.limit
    colour = OVER_LIMIT if spend.over else NEAR_LIMIT if limit.percent_used >= APPROACHING_PERCENT else WITHIN_LIMIT
    title = f"{spend.display_name}: ${limit.spent_usd:.2f} of ${limit.amount_usd:.2f} ({limit.period})"
    return meter(
        chart_id=f"spend-{spend.name}",
        title=title,
        value=float(limit.spent_usd),
        maximum=float(limit.amount_usd),
        colour=colour,
        width=160,
    )


def webhooks_chart(traffic: list[WebhookTraffic]) -> Chart:
    return stacked_bars(
        chart_id="webhooks-24h",
        title="Webhooks in the last 24 h: status changes applied and deliveries rejected, per provider",
        description=", ".join(f"{t.provider}: {t.applied} applied, {t.rejected_total} rejected" for t in traffic),
        categories=[(t.provider, {"applied": t.applied, "rejected": t.rejected_total}) for t in traffic],
        series=[Series("applied", "status changes applied", APPLIED), Series("rejected", "rejected", REJECTED)],
        width=320,
    )
