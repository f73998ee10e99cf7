"""simpletuner_quota_percent_used{scope,target,quota_type} (the `approvals` category): per
quota, the highest usage among the users it applies to, in percent of its limit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone
from rest_framework.test import APIClient

from cloudops.metrics.services import metrics_config_update
from governance.models import Quota
from providers.models import Job, JobStatus
from tests.governance.conftest import in_group
from tests.metrics.scrape import Scraper, types
from tests.metrics.test_promtool import promtool_findings

pytestmark = pytest.mark.django_db

NAME = "simpletuner_quota_percent_used"


@pytest.fixture
def scrape(anon: APIClient) -> Scraper:
    metrics_config_update(prometheus_enabled=True, prometheus_categories=["approvals"])
    return Scraper(anon)


def percents(scrape: Scraper) -> dict[tuple[str, str, str], float]:
    return {
        (dict(labels)["scope"], dict(labels)["target"], dict(labels)["quota_type"]): value
        for (name, labels), value in scrape().items()
        if name == NAME
    }


def test_without_quotas_there_is_no_series(scrape: Scraper) -> None:
    assert percents(scrape) == {}


def test_each_quota_reports_its_busiest_user(
    scrape: Scraper, alice: AbstractUser, bob: AbstractUser, lena: AbstractUser
) -> None:
    in_group(alice, "researcher")
    Quota.objects.create(scope="global", quota_type="concurrent_jobs", limit=4, action="queue")
    Quota.objects.create(scope="group", target="researcher", quota_type="concurrent_jobs", limit=2, action="queue")
    Quota.objects.create(scope="user", target="bob", quota_type="monthly_spend_usd", limit=20, action="warn")
    Quota.objects.create(scope="user", target="lena", quota_type="jobs_per_day", limit=0)
    for owner, count in ((alice, 1), (bob, 3)):
        for i in range(count):
            Job.objects.create(owner=owner, provider="local", status=JobStatus.RUNNING, external_id=f"{owner}{i}")
    Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED)  # waiting: no slot
    Job.objects.create(
        owner=bob, provider="local", status=JobStatus.COMPLETED, completed_at=timezone.now(), cost_usd=Decimal("5")
    )
    assert percents(scrape) == {
        ("global", "", "concurrent_jobs"): 75.0,  # bob: 3 of 4
        ("group", "researcher", "concurrent_jobs"): 50.0,  # alice: 1 of 2 (bob is in no group)
        ("user", "bob", "monthly_spend_usd"): 25.0,
        ("user", "lena", "jobs_per_day"): 0.0,  # a limit of 0, nothing used
    }
    assert types(scrape.text())[NAME] == "gauge"


def test_the_output_passes_promtool(scrape: Scraper, alice: AbstractUser) -> None:
    Quota.objects.create(scope="user", target="alice", quota_type="jobs_per_day", limit=0)
    Job.objects.create(owner=alice, provider="local", status=JobStatus.COMPLETED)
    assert percents(scrape) == {("user", "alice", "jobs_per_day"): 100.0}
    assert promtool_findings(scrape.text()) == []
