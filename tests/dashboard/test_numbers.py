"""The dashboard's figures (providers.dashboard): days in a time zone, spend against the
limit, webhook traffic from the audit trail, the newest failed jobs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone
from rest_framework.test import APIClient

from audit.services import audit_record
from cloudops import audit_events as events
from cloudops.auditing import Actor
from providers import dashboard
from providers.models import Job, JobStatus
from tests.dashboard import seed

pytestmark = pytest.mark.django_db

SAO_PAULO = ZoneInfo("America/Sao_Paulo")  # UTC-3 all year
BERLIN = ZoneInfo("Europe/Berlin")  # UTC+1, UTC+2 from 2025-03-30 02:00 local


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def counts(days: list[dashboard.JobDay]) -> dict[str, int]:
    return {day.day.isoformat(): day.total for day in days}


def test_a_job_counts_on_its_day_in_the_time_zone_not_in_utc(alice: AbstractUser) -> None:
    seed.job(alice, created=at("2025-03-10T02:59:59"))  # 9 March, 23:59:59 in São Paulo
    seed.job(alice, created=at("2025-03-10T03:00:00"))  # 10 March, midnight: the new day
    seed.job(alice, created=at("2025-03-04T02:59:59"))  # 3 March: before the seven days
    seed.job(alice, created=at("2025-03-04T03:00:00"))  # 4 March, the first of the seven
    days = dashboard.jobs_per_day(now=at("2025-03-10T12:00:00"), tz=SAO_PAULO)
    assert [d.day.isoformat() for d in days] == [f"2025-03-{n:02d}" for n in range(4, 11)]
    assert counts(days) == {
        "2025-03-04": 1,
        "2025-03-05": 0,
        "2025-03-06": 0,
        "2025-03-07": 0,
        "2025-03-08": 0,
        "2025-03-09": 1,
        "2025-03-10": 1,
    }


def test_a_day_of_23_hours_at_the_change_to_summer_time_is_one_day(alice: AbstractUser) -> None:
    seed.job(alice, created=at("2025-03-29T23:00:00"))  # 30 March 00:00 CET: its first instant
    seed.job(alice, created=at("2025-03-30T21:59:59"))  # 30 March 23:59:59 CEST: its last
    seed.job(alice, created=at("2025-03-30T22:00:00"))  # 31 March 00:00 CEST
    days = dashboard.jobs_per_day(now=at("2025-03-31T10:00:00"), tz=BERLIN)
    assert counts(days)["2025-03-30"] == 2
    assert counts(days)["2025-03-31"] == 1
    assert sum(counts(days).values()) == 3


def test_jobs_are_split_by_their_status_now_and_future_ones_are_not_counted(alice: AbstractUser) -> None:
    now = at("2025-06-02T12:00:00")
    seed.job(alice, created=now - timedelta(hours=1), status=JobStatus.FAILED)
    seed.job(alice, created=now - timedelta(hours=2), status=JobStatus.FAILED)
    seed.job(alice, created=now - timedelta(hours=3), status=JobStatus.RUNNING)
    seed.job(alice, created=now - timedelta(days=1))
    seed.job(alice, created=now + timedelta(days=1))  # tomorrow (a skewed clock): not in the chart
    days = dashboard.jobs_per_day(now=now, tz=UTC)
    today, yesterday = days[-1].by_status, days[-2].by_status
    assert (today["failed"], today["running"], today["completed"]) == (2, 1, 0)
    assert yesterday["completed"] == 1 and days[-2].total == 1
    assert sum(d.total for d in days) == 4


def test_an_empty_database_gives_seven_empty_days_and_no_failed_jobs() -> None:
    days = dashboard.jobs_per_day(now=timezone.now(), tz=UTC)
    assert len(days) == 7 and all(d.total == 0 for d in days)
    assert set(days[0].by_status) == set(JobStatus.values)
    assert dashboard.recent_failed_jobs() == []
    assert all(t.applied == t.rejected_total == t.recent == 0 for t in dashboard.webhook_traffic(now=timezone.now()))


def test_spend_counts_the_current_period_against_the_limit(alice: AbstractUser) -> None:
    now = timezone.now()
    seed.limit("local", "10.00")
    done: dict[str, Any] = {"status": JobStatus.COMPLETED, "completed_at": now}
    seed.job(alice, created=now, cost_usd=Decimal("4.000000"), **done)
    seed.job(alice, created=now, cost_usd=Decimal("3.500000"), **done)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month: dict[str, Any] = {"status": JobStatus.COMPLETED, "completed_at": month_start - timedelta(seconds=1)}
    seed.job(alice, created=month_start - timedelta(days=2), cost_usd=Decimal("100"), **last_month)
    spend = {s.name: s for s in dashboard.spend_per_provider(now=now)}
    local = spend["local"]
    assert (local.limit.spent_usd, local.limit.amount_usd, local.limit.percent_used) == (Decimal("7.5"), 10, 75.0)
    assert not local.over
    assert spend["replicate"].limit.enabled is False
    seed.job(alice, created=now, cost_usd=Decimal("2.5"), **done)
    assert {s.name: s for s in dashboard.spend_per_provider(now=now)}["local"].over


def test_spend_is_what_the_provider_api_reports(alice: AbstractUser, staff_client: APIClient) -> None:
    now = timezone.now()
    seed.limit("local", "20.00", period="daily")
    seed.job(alice, created=now, status=JobStatus.COMPLETED, completed_at=now, cost_usd=Decimal("5.25"))
    api = staff_client.get("/api/cloud/providers/local").json()["provider"]["cost_limit"]
    local = {s.name: s for s in dashboard.spend_per_provider(now=timezone.now())}["local"]
    assert local.limit.as_dict() == api


def test_webhook_traffic_counts_applied_rejected_and_recent_deliveries(
    post_webhook: Callable[..., Any], local_job: Job
) -> None:
    seed.webhook_traffic(post_webhook, local_job)
    traffic = {t.provider: t for t in dashboard.webhook_traffic(now=timezone.now())}
    local, replicate = traffic["local"], traffic["replicate"]
    assert local.applied == 1, "the progress-only delivery changed no status"
    assert local.rejected == {"signature": 2, "rate_limited": 1}
    assert local.recent == 2, "both accepted deliveries still have their replay record"
    assert replicate.rejected == {"ip_not_allowed": 1}
    assert (replicate.applied, replicate.recent) == (0, 0)


def test_webhook_traffic_older_than_24_hours_is_not_counted(post_webhook: Callable[..., Any], local_job: Job) -> None:
    seed.webhook_traffic(post_webhook, local_job)
    tomorrow = timezone.now() + timedelta(hours=24, seconds=1)
    traffic = dashboard.webhook_traffic(now=tomorrow)
    assert all(t.applied == t.rejected_total == t.recent == 0 for t in traffic)


def test_the_newest_failed_jobs_come_first_and_only_failed_ones(alice: AbstractUser) -> None:
    now = timezone.now()
    for i in range(12):
        seed.job(alice, created=now - timedelta(minutes=i), status=JobStatus.FAILED, error=f"error {i}")
    seed.job(alice, created=now + timedelta(minutes=1), status=JobStatus.CANCELLED)
    failed = dashboard.recent_failed_jobs()
    assert [j.error for j in failed] == [f"error {i}" for i in range(10)]


def test_refusals_of_paths_that_name_no_provider_share_one_row() -> None:
    audit_record(
        event_type=events.RATE_LIMITED,
        actor=Actor(ip="203.0.113.9"),
        target_type="endpoint",
        target_id="/api/webhooks/<script>",
        action="POST",
    )
    traffic = {t.provider: t for t in dashboard.webhook_traffic(now=timezone.now())}
    assert set(traffic) == {"local", "replicate", "(other paths)"}
    assert traffic["(other paths)"].rejected == {"rate_limited": 1}
