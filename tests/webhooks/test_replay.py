"""Replays and duplicates: a webhook-id is applied once, across processes, until it expires."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone

from providers.credentials import local_webhook_secret
from providers.models import Job, JobStatus, WebhookDelivery
from providers.sync import jobs_sync
from providers.webhooks.apply import replay_expiry, webhook_prune
from tests.providers.helpers import race
from tests.webhooks.signing import signed_headers


def running(job: Job) -> dict[str, Any]:
    return {"type": "training.status", "data": {"status": "running"}, "job_id": job.pk}


@pytest.mark.django_db
def test_a_repeated_webhook_id_is_acknowledged_but_not_applied_again(
    post_webhook: Callable[..., Any], local_job: Job
) -> None:
    progress = {"type": "training.progress", "data": {"step": 5, "total_steps": 10}, "job_id": local_job.pk}
    first = post_webhook("local", progress, msg_id="msg_once")
    assert first.json()["status"] == "received"
    # The same delivery again (a retry, or an attacker replaying a captured request)...
    Job.objects.filter(pk=local_job.pk).update(progress={})
    again = post_webhook("local", progress, msg_id="msg_once")
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate"}
    local_job.refresh_from_db()
    assert local_job.progress == {}  # ...is not applied a second time
    assert WebhookDelivery.objects.filter(webhook_id="msg_once").count() == 1


@pytest.mark.django_db
def test_the_same_id_from_another_provider_is_a_different_delivery(
    post_webhook: Callable[..., Any], local_job: Job, alice: AbstractUser
) -> None:
    WebhookDelivery.objects.create(
        provider="replicate", webhook_id="msg_shared", expires_at=timezone.now() + timedelta(hours=1)
    )
    assert post_webhook("local", running(local_job), msg_id="msg_shared").json()["status"] == "received"


@pytest.mark.django_db
def test_ids_are_remembered_past_the_tolerance_and_then_pruned() -> None:
    now = timezone.now()
    expiry = replay_expiry(str(int(now.timestamp())), now)
    assert expiry - now >= timedelta(seconds=300 + 300 - 1)
    # A timestamp in the future (within tolerance) is remembered for longer.
    assert replay_expiry(str(int(now.timestamp()) + 240), now) > expiry
    assert replay_expiry("garbage", now) - now >= timedelta(seconds=599)
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(provider="local", webhook_id=f"old-{i}", expires_at=now - timedelta(seconds=1))
            for i in range(700)
        ]
        + [WebhookDelivery(provider="local", webhook_id="fresh", expires_at=now + timedelta(seconds=60))]
    )
    assert webhook_prune(now) == 500  # a batch at a time, so one delivery never does a huge delete
    assert webhook_prune(now) == 200
    assert list(WebhookDelivery.objects.values_list("webhook_id", flat=True)) == ["fresh"]


@pytest.mark.django_db
def test_an_expired_record_does_not_block_its_id(post_webhook: Callable[..., Any], local_job: Job) -> None:
    WebhookDelivery.objects.create(
        provider="local", webhook_id="msg_old", expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert post_webhook("local", running(local_job), msg_id="msg_old").json()["status"] == "received"
    # Taken over by the new delivery: remembered again, as a fresh one would be.
    assert WebhookDelivery.objects.get(webhook_id="msg_old").expires_at > timezone.now()


@pytest.mark.django_db
def test_the_sync_pass_prunes_expired_records_off_the_delivery_path(
    post_webhook: Callable[..., Any], local_job: Job
) -> None:
    past = timezone.now() - timedelta(seconds=1)
    WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(provider="local", webhook_id=f"gone-{i}", expires_at=past) for i in range(1200)]
    )
    post_webhook("local", running(local_job))
    assert WebhookDelivery.objects.count() == 1201  # a delivery deletes nothing
    assert jobs_sync().ran
    # Every expired record, a batch at a time; the delivery's own record stays.
    assert WebhookDelivery.objects.count() == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_identical_deliveries_racing_in_separate_processes_are_applied_once(
    alice: AbstractUser, tmp_path: Path
) -> None:
    job = Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED)
    body = json.dumps(running(job)).encode()
    headers = signed_headers(local_webhook_secret(job.pk), body, msg_id="msg_raced", timestamp=time.time())
    code = f"""
        from providers.config import provider_config_get
        from providers.webhooks.receive import webhook_receive
        outcome = webhook_receive(
            provider_config=provider_config_get("local"), body={body!r}, headers={headers!r}, ip="203.0.113.9"
        )
        print(outcome.status_code, outcome.body["status"])
    """
    results = sorted(out.strip() for out in race(code, 4, tmp_path))
    assert results == ["200 duplicate", "200 duplicate", "200 duplicate", "200 received"]
    job.refresh_from_db()
    assert job.status == "running"
    assert WebhookDelivery.objects.filter(webhook_id="msg_raced").count() == 1
