"""What the dashboard tests put in the database: jobs on given days, spend, webhook traffic
through the real webhook endpoint (so the audit trail holds what a server writes)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.core.cache import cache

from audit.services import audit_record
from cloudops import audit_events as events
from cloudops.auditing import Actor
from providers.config import provider_config_get
from providers.models import Job, JobStatus

WRONG_SECRET = "whsec_" + "A" * 32


def job(owner: AbstractUser, *, created: datetime, status: str = JobStatus.COMPLETED, **fields: Any) -> Job:
    return Job.objects.create(owner=owner, provider="local", status=status, created_at=created, **fields)


def limit(provider: str, amount: str, *, period: str = "monthly", enabled: bool = True) -> None:
    config = provider_config_get(provider)
    config.cost_limit_enabled = enabled
    config.cost_limit_amount = Decimal(amount)
    config.cost_limit_period = period
    config.save()


def webhook_traffic(post_webhook: Callable[..., Any], local_job: Job) -> None:
    """For `local`: 1 status change applied, 1 progress-only delivery, 2 bad signatures and
    1 rate-limit refusal; for `replicate`: 1 delivery from outside its allowlist."""
    running = {"type": "training.status", "data": {"status": "running"}, "job_id": local_job.pk}
    progress = {"type": "training.progress", "data": {"step": 5, "total_steps": 10}, "job_id": local_job.pk}
    assert post_webhook("local", running).json()["status"] == "received"
    assert post_webhook("local", progress).json()["status"] == "received"
    assert post_webhook("local", progress, secret=WRONG_SECRET).status_code == 401
    assert post_webhook("local", running, secret=WRONG_SECRET).status_code == 401
    replicate = provider_config_get("replicate")
    replicate.webhook_allowed_ips = ["192.0.2.0/24"]
    replicate.save()
    cache.clear()  # the webhook endpoint reads provider settings through the cache
    assert post_webhook("replicate", {"id": "p1", "status": "succeeded"}).status_code == 403
    # What cloudops.ratelimit.violations writes for an IP's first refusal in a window.
    audit_record(
        event_type=events.RATE_LIMITED,
        actor=Actor(ip="203.0.113.9"),
        target_type="endpoint",
        target_id="/api/webhooks/local",
        action="POST",
        details={"path": "/api/webhooks/local", "rule": "^/api/webhooks(/|$)"},
    )
