"""Webhook channels end to end: a real job, a loopback receiver verifying every delivery with
the `standardwebhooks` package, retries under the same webhook-id, rotation."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from notifications.delivery import MAX_ATTEMPTS, RETRY_SCHEDULE, deliveries_drain, deliveries_run, retry_delay
from notifications.models import Channel, Delivery, DeliveryStatus
from providers.models import JobStatus
from tests.notifications.conftest import Receiver
from tests.notifications.helpers import post, webhook_channel
from tests.providers.helpers import QUICK, submit, wait_for_status

JOB_EVENTS = ["job.submitted", "job.started", "job.completed", "job.failed", "job.cancelled"]


def verified(secret: str, receiver: Receiver) -> list[dict]:
    return [Webhook(secret).verify(r.body, r.headers) for r in receiver.requests]


@pytest.mark.django_db(transaction=True)
def test_a_job_run_delivers_every_event_signed(
    staff_client: APIClient, alice_client: APIClient, alice: AbstractUser, receiver: Receiver
) -> None:
    created = webhook_channel(staff_client, receiver.url, JOB_EVENTS)
    assert created["secret"].startswith("whsec_")
    job_id = submit(alice_client, {"provider": "local", "config": QUICK, "name": "e2e"}).json()["job_id"]
    wait_for_status(job_id, JobStatus.COMPLETED)
    assert deliveries_drain() == 3
    events = verified(created["secret"], receiver)
    assert [e["type"] for e in events] == ["job.submitted", "job.started", "job.completed"]
    done = events[-1]
    assert set(done) == {"type", "timestamp", "data"}
    assert done["data"]["job_id"] == job_id and done["data"]["owner"] == "alice"
    assert (done["data"]["provider"], done["data"]["status"], done["data"]["previous_status"]) == (
        "local",
        "completed",
        "running",
    )
    assert done["data"]["links"]["api"].endswith(f"/api/cloud/jobs/{job_id}")
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 3
    assert Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_failed_first_attempt_is_retried_with_the_same_webhook_id(
    staff_client: APIClient, alice_client: APIClient, receiver: Receiver
) -> None:
    created = webhook_channel(staff_client, receiver.url, ["job.submitted"])
    receiver.answers = [(500, {})]
    submit(alice_client, {"provider": "local", "config": QUICK})
    now = timezone.now()
    assert deliveries_run(now=now) == 1
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)
    assert 4 <= (delivery.next_attempt_at - now).total_seconds() <= 6  # the first retry: 5 s +- 20%
    assert deliveries_run(now=now) == 0  # not due yet
    assert deliveries_run(now=now + timedelta(seconds=6)) == 1
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == Delivery.objects.get().msg_id
    assert first.body == second.body
    verified(created["secret"], receiver)
    body = staff_client.get("/api/cloud/notifications/deliveries?status=delivered").json()
    attempts = body["deliveries"][0]["attempt_log"]
    assert [(a["ok"], a["status_code"]) for a in attempts] == [(False, 500), (True, 200)]
    assert attempts[0]["error"].startswith("answered 500") and attempts[0]["latency_ms"] >= 0


@pytest.mark.django_db
def test_retry_after_is_honoured_when_longer_than_the_schedule(
    staff_client: APIClient, alice_client: APIClient, receiver: Receiver
) -> None:
    webhook_channel(staff_client, receiver.url, ["job.submitted"])
    receiver.answers = [(429, {"Retry-After": "120"})]
    submit(alice_client, {"provider": "local", "config": QUICK})
    now = timezone.now()
    deliveries_run(now=now)
    delivery = Delivery.objects.get()
    assert (delivery.next_attempt_at - now).total_seconds() >= 120


def test_the_retry_schedule_grows_to_about_a_day() -> None:
    assert retry_delay(1, rand=0.5) == RETRY_SCHEDULE[0] == 5
    delays = [retry_delay(n, rand=0.5) for n in range(1, MAX_ATTEMPTS)]
    assert delays == sorted(delays)
    assert 20 * 3600 <= sum(delays) <= 26 * 3600
    assert retry_delay(1, rand=0.0) == pytest.approx(4) and retry_delay(1, rand=1.0) == pytest.approx(6)


@pytest.mark.django_db
def test_the_last_failure_fails_the_delivery_and_disables_the_failing_channel(
    staff_client: APIClient, alice_client: APIClient, receiver: Receiver
) -> None:
    webhook_channel(staff_client, receiver.url, ["job.submitted"])
    receiver.answers = [(503, {})] * (MAX_ATTEMPTS - 1) + [(502, {})]
    submit(alice_client, {"provider": "local", "config": QUICK})
    when = timezone.now()
    for _ in range(MAX_ATTEMPTS):
        assert deliveries_run(now=when) == 1
        when += timedelta(days=1)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, MAX_ATTEMPTS)
    channel = Channel.objects.get()
    assert channel.enabled is False and "failed 11 times" in channel.disabled_reason
    assert "502" in channel.disabled_reason.split("times: ", 1)[1], channel.disabled_reason  # the last error
    from audit.models import AuditEntry

    assert AuditEntry.objects.filter(event_type="notification_channel.disabled", target_id=str(channel.pk)).exists()
    # Redelivery after the receiver is fixed: re-enable, redeliver, one more attempt succeeds.
    patched = staff_client.patch(
        f"/api/cloud/notifications/channels/{channel.pk}", data={"enabled": True}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["channel"]["disabled_reason"] == ""
    again = post(staff_client, f"/api/cloud/notifications/deliveries/{delivery.pk}/redeliver")
    assert again.status_code == 202 and again.json()["delivery"]["status"] == "pending"
    assert post(staff_client, f"/api/cloud/notifications/deliveries/{delivery.pk}/redeliver").status_code == 409
    assert deliveries_run() == 1
    assert Delivery.objects.get().status == DeliveryStatus.DELIVERED
    assert receiver.requests[-1].headers["webhook-id"] == delivery.msg_id


@pytest.mark.django_db
def test_a_rotated_secret_signs_beside_the_old_one_for_the_grace_period(
    staff_client: APIClient, receiver: Receiver
) -> None:
    created = webhook_channel(staff_client, receiver.url, ["job.completed"])
    channel_id = created["channel"]["id"]
    rotated = post(staff_client, f"/api/cloud/notifications/channels/{channel_id}/rotate-secret")
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != created["secret"]
    assert post(staff_client, f"/api/cloud/notifications/channels/{channel_id}/test").status_code == 202
    deliveries_run()
    (request,) = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (created["secret"], new):
        assert Webhook(secret).verify(request.body, request.headers)["type"] == "test"
    # After the grace period only the new secret signs.
    Channel.objects.filter(pk=channel_id).update(previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    post(staff_client, f"/api/cloud/notifications/channels/{channel_id}/test")
    deliveries_run()
    last = receiver.requests[-1]
    Webhook(new).verify(last.body, last.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(created["secret"]).verify(last.body, last.headers)


@pytest.mark.django_db
def test_the_secret_is_shown_only_in_the_create_answer(staff_client: APIClient, receiver: Receiver) -> None:
    created = webhook_channel(staff_client, receiver.url, ["job.completed"])
    secret = created["secret"]
    for path in ("/api/cloud/notifications/channels", f"/api/cloud/notifications/channels/{created['channel']['id']}"):
        text = json.dumps(staff_client.get(path).json())
        assert secret not in text and "secret" not in json.loads(text).get("channel", {})
    assert secret not in repr(Channel.objects.get())


@pytest.mark.django_db
def test_an_event_nobody_subscribed_to_writes_nothing(alice_client: APIClient, receiver: Receiver) -> None:
    submit(alice_client, {"provider": "local", "config": QUICK})
    assert Delivery.objects.count() == 0
