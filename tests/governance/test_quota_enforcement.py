"""Quotas at submission: each scope with each action (block refuses with 403, warn adds a
warning, queue records the job `queued`), each audited."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEntry
from governance.models import ApprovalRule, Quota
from providers.models import Job, JobStatus
from tests.governance.conftest import in_group
from tests.providers.helpers import QUICK, submit

pytestmark = pytest.mark.django_db

TARGETS = {"global": "", "group": "researcher", "user": "alice"}


@pytest.fixture
def busy_alice(alice: AbstractUser) -> AbstractUser:
    """Alice, a researcher by group, with one job running."""
    in_group(alice, "researcher")
    Job.objects.create(owner=alice, provider="local", status=JobStatus.RUNNING, external_id="1")
    return alice


def quota(scope: str, action: str, quota_type: str = "concurrent_jobs", limit: Any = 1) -> Quota:
    return Quota.objects.create(scope=scope, target=TARGETS[scope], quota_type=quota_type, limit=limit, action=action)


@pytest.mark.parametrize("scope", ["global", "group", "user"])
def test_a_block_quota_refuses_with_the_quota_its_limit_and_the_usage(
    scope: str, busy_alice: AbstractUser, alice_client: APIClient
) -> None:
    q = quota(scope, "block")
    response = submit(alice_client, {"provider": "local", "config": QUICK})
    assert response.status_code == 403, response.json()
    body = response.json()
    assert body["code"] == "quota_exceeded"
    assert (body["limit"], body["usage"]) == (1, 1)
    assert body["quota"] == {
        "id": q.pk,
        "scope": scope,
        "target": TARGETS[scope],
        "quota_type": "concurrent_jobs",
        "limit": 1,
        "action": "block",
    }
    assert body["detail"].endswith("concurrent_jobs quota is 1; your usage is 1.")
    assert Job.objects.count() == 1  # only the running one
    entry = AuditEntry.objects.get(event_type="quota.exceeded")
    assert (entry.action, entry.target_id, entry.actor_username) == ("block", str(q.pk), "alice")


@pytest.mark.parametrize("scope", ["global", "group", "user"])
def test_a_warn_quota_lets_the_job_through_with_a_warning(
    scope: str, busy_alice: AbstractUser, alice_client: APIClient
) -> None:
    quota(scope, "warn")
    response = submit(alice_client, {"provider": "local", "config": QUICK})
    assert response.status_code == 201, response.json()
    assert any(w.startswith("Quota warning: ") and "your usage is 1" in w for w in response.json()["warnings"])
    job = Job.objects.get(pk=response.json()["job_id"])
    assert job.external_id  # started at the provider
    assert AuditEntry.objects.get(event_type="quota.warning").details["job_id"] == job.pk


@pytest.mark.parametrize("scope", ["global", "group", "user"])
def test_a_queue_quota_records_the_job_queued_and_unstarted(
    scope: str, busy_alice: AbstractUser, alice_client: APIClient
) -> None:
    quota(scope, "queue")
    response = submit(alice_client, {"provider": "local", "config": QUICK})
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "queued"
    assert any(w.startswith("Queued until a slot frees") for w in response.json()["warnings"])
    job = Job.objects.get(pk=response.json()["job_id"])
    assert (job.status, job.external_id, job.start_claimed_at, job.runner) == ("queued", "", None, {})
    entry = AuditEntry.objects.get(event_type="quota.exceeded")
    assert (entry.action, entry.details["job_id"]) == ("queue", job.pk)


def test_under_the_limit_nothing_happens(alice: AbstractUser, alice_client: APIClient) -> None:
    quota("global", "block", limit=1)
    response = submit(alice_client, {"provider": "local", "config": QUICK})
    assert response.status_code == 201
    assert not [w for w in response.json()["warnings"] if "Quota" in w or "Queued" in w]
    assert not AuditEntry.objects.filter(event_type__startswith="quota.").exists()


def test_block_wins_over_queue_and_the_lowest_limit_over_the_others(
    busy_alice: AbstractUser, alice_client: APIClient
) -> None:
    Job.objects.create(owner=busy_alice, provider="local", status=JobStatus.RUNNING, external_id="2")
    quota("global", "block", limit=2)
    quota("user", "queue", limit=1)
    response = submit(alice_client, {"provider": "local", "config": QUICK})
    assert response.status_code == 403
    assert response.json()["quota"]["scope"] == "global"


def test_jobs_per_day_counts_todays_jobs(alice: AbstractUser, alice_client: APIClient) -> None:
    quota("user", "block", quota_type="jobs_per_day", limit=2)
    yesterday = timezone.now() - timezone.timedelta(days=1, hours=1)
    Job.objects.create(owner=alice, provider="local", status=JobStatus.COMPLETED, created_at=yesterday)
    Job.objects.create(owner=alice, provider="local", status=JobStatus.FAILED)
    assert submit(alice_client, {"provider": "local", "config": QUICK}).status_code == 201
    refused = submit(alice_client, {"provider": "local", "config": QUICK})
    assert refused.status_code == 403 and (refused.json()["limit"], refused.json()["usage"]) == (2, 2)


def test_monthly_spend_blocks_once_the_limit_is_spent(alice: AbstractUser, alice_client: APIClient) -> None:
    quota("global", "block", quota_type="monthly_spend_usd", limit=Decimal("10"))
    Job.objects.create(
        owner=alice, provider="local", status=JobStatus.COMPLETED, completed_at=timezone.now(), cost_usd=Decimal("10.5")
    )
    refused = submit(alice_client, {"provider": "local", "config": QUICK})
    assert refused.status_code == 403
    assert (refused.json()["limit"], refused.json()["usage"]) == (10, 10.5)
    assert refused.json()["detail"].endswith("monthly_spend_usd quota is 10.00; your usage is 10.50.")


def test_a_warning_prints_a_job_count_as_a_whole_number(alice: AbstractUser, alice_client: APIClient) -> None:
    quota("global", "warn", quota_type="jobs_per_day", limit=1)
    Job.objects.create(owner=alice, provider="local", status=JobStatus.FAILED)
    response = submit(alice_client, {"provider": "local", "config": QUICK})
    assert response.status_code == 201, response.json()
    assert "Quota warning: The global jobs_per_day quota is 1; your usage is 1." in response.json()["warnings"]


def test_a_held_job_is_held_not_queued(busy_alice: AbstractUser, alice_client: APIClient) -> None:
    ApprovalRule.objects.create(name="local jobs", condition="provider", threshold="local")
    quota("global", "queue")
    response = submit(alice_client, {"provider": "local", "config": QUICK})
    assert response.json()["status"] == "pending_approval"


def test_a_retry_with_the_same_key_returns_the_queued_job(busy_alice: AbstractUser, alice_client: APIClient) -> None:
    quota("user", "queue")
    first = submit(alice_client, {"provider": "local", "config": QUICK}, **{"Idempotency-Key": "k1"})
    again = submit(alice_client, {"provider": "local", "config": QUICK}, **{"Idempotency-Key": "k1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["job_id"] == first.json()["job_id"] and again.json()["status"] == "queued"


def test_a_queued_job_is_cancelled_without_asking_the_provider(
    busy_alice: AbstractUser, alice_client: APIClient
) -> None:
    quota("user", "queue")
    job_id = submit(alice_client, {"provider": "local", "config": QUICK}).json()["job_id"]
    response = alice_client.post(f"/api/cloud/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.json()
    assert Job.objects.get(pk=job_id).status == "cancelled"
