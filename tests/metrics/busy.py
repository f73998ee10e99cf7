"""An instance with something in every metric category, so every family appears in a scrape."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import AbstractUser
from rest_framework.test import APIClient

from audit.services import audit_record
from audit.verification import audit_verify
from cloudops.auditing import Actor
from governance.models import Quota
from notifications.models import Channel, Delivery, DeliveryAttempt, DeliveryStatus
from providers.circuit import circuit_record_failure
from providers.config import provider_config_get, provider_config_update
from providers.jobs import job_transition
from providers.models import Job, JobStatus


@pytest.fixture
def busy_instance(alice: AbstractUser, alice_client: APIClient) -> None:
    """Something in every category, so every metric family appears in the output."""
    config = provider_config_get("local")
    provider_config_update(
        provider_config=config,
        changes={"cost_limit_enabled": True, "cost_limit_amount": Decimal("5"), "credit_balance_usd": Decimal("100")},
        actor=Actor(),
    )
    job = Job.objects.create(owner=alice, provider="local", hardware="local")
    job_transition(job=job, to=JobStatus.COMPLETED, fields={"run_seconds": 12.5, "cost_usd": Decimal("1.5")})
    alice_client.get(f"/api/cloud/jobs/{job.pk}")
    alice_client.get("/api/cloud/jobs/job-missing")
    audit_record(event_type="backup.created", actor=Actor(username="cron"))
    audit_verify(trigger="command")
    circuit_record_failure("replicate", probe=False, error="HTTP 502")
    Quota.objects.create(scope="global", quota_type="jobs_per_day", limit=10, action="warn")
    # A notification delivered after one failed attempt (the channel made after the job moved,
    # so the transition above queued nothing).
    channel = Channel.objects.create(name="ops", channel_type="webhook", events=["job.completed"], url="https://x.test")
    sent = Delivery.objects.create(
        channel=channel, event_type="job.completed", msg_id="msg_busy", payload={}, status=DeliveryStatus.DELIVERED
    )
    DeliveryAttempt.objects.create(delivery=sent, ok=False, status_code=500)
