"""Retention of the delivery log: finished deliveries older than
SIMPLETUNER_NOTIFICATIONS_RETENTION_DAYS go with their attempts, in batches; pending ones and
young ones stay; 0 keeps everything."""

from __future__ import annotations

import io
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.exceptions import NotFound

from notifications.delivery import MAX_ATTEMPTS, attempt_record
from notifications.models import Channel, Delivery, DeliveryAttempt, DeliveryStatus
from notifications.retention import PRUNE_BATCH, deliveries_prune, deliveries_prune_all
from notifications.senders import Outcome
from notifications.services import delivery_redeliver

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
_ids = itertools.count()


@pytest.fixture
def channel() -> Channel:
    return Channel.objects.create(name="ops", channel_type="webhook", events=["job.failed"], url="https://ops.test/h")


def delivery(channel: Channel, status: str, age_days: float, *, delivered_days: float | None = None) -> Delivery:
    """A delivery queued `age_days` ago whose last attempt was then too (delivered then, if
    delivered, unless `delivered_days` says another day)."""
    at = NOW - timedelta(days=age_days)
    delivered = NOW - timedelta(days=age_days if delivered_days is None else delivered_days)
    row = Delivery.objects.create(
        channel=channel,
        event_type="job.failed",
        msg_id=f"msg_{next(_ids)}",
        payload={},
        status=status,
        created_at=at,
        next_attempt_at=at,
        delivered_at=delivered if status == DeliveryStatus.DELIVERED else None,
    )
    DeliveryAttempt.objects.create(delivery=row, attempted_at=at, ok=status == DeliveryStatus.DELIVERED)
    return row


def test_old_finished_deliveries_go_with_their_attempts(channel: Channel, settings: SettingsWrapper) -> None:
    settings.SIMPLETUNER_NOTIFICATIONS_RETENTION_DAYS = 30
    old_delivered = delivery(channel, DeliveryStatus.DELIVERED, 31)
    old_failed = delivery(channel, DeliveryStatus.FAILED, 45)
    young_delivered = delivery(channel, DeliveryStatus.DELIVERED, 29)
    young_failed = delivery(channel, DeliveryStatus.FAILED, 1)
    assert deliveries_prune_all(now=NOW) == 2
    assert set(Delivery.objects.values_list("pk", flat=True)) == {young_delivered.pk, young_failed.pk}
    assert not DeliveryAttempt.objects.filter(delivery_id__in=[old_delivered.pk, old_failed.pk]).exists()
    assert DeliveryAttempt.objects.count() == 2


def test_pending_deliveries_stay_whatever_their_age(channel: Channel, settings: SettingsWrapper) -> None:
    settings.SIMPLETUNER_NOTIFICATIONS_RETENTION_DAYS = 1
    pending = delivery(channel, DeliveryStatus.PENDING, 400)
    assert deliveries_prune_all(now=NOW) == 0
    assert list(Delivery.objects.values_list("pk", flat=True)) == [pending.pk]


def test_a_delivery_counts_from_when_it_finished_not_when_it_was_queued(
    channel: Channel, settings: SettingsWrapper
) -> None:
    settings.SIMPLETUNER_NOTIFICATIONS_RETENTION_DAYS = 30
    # Queued 60 days ago, redelivered yesterday.
    redelivered = delivery(channel, DeliveryStatus.DELIVERED, 60, delivered_days=1)
    assert deliveries_prune_all(now=NOW) == 0
    assert Delivery.objects.filter(pk=redelivered.pk).exists()


def test_a_failure_counts_from_its_last_attempt_not_from_when_it_was_due(
    channel: Channel, settings: SettingsWrapper
) -> None:
    """A delivery whose channel was disabled waits, however long; when the channel is enabled
    again, its last attempt fails today: that failure is the one the log must still show (the
    operator redelivers "what failed"), though the attempt was due 40 days ago."""
    settings.SIMPLETUNER_NOTIFICATIONS_RETENTION_DAYS = 30
    waited = delivery(channel, DeliveryStatus.PENDING, 40)
    Delivery.objects.filter(pk=waited.pk).update(attempts=MAX_ATTEMPTS - 1)
    waited.refresh_from_db()
    attempt_record(delivery=waited, outcome=Outcome(ok=False, status_code=503, error="HTTP 503"), now=NOW)
    assert Delivery.objects.get(pk=waited.pk).status == DeliveryStatus.FAILED
    assert deliveries_prune_all(now=NOW + timedelta(minutes=1)) == 0
    assert Delivery.objects.filter(pk=waited.pk).exists()
    # ...and it goes once that last attempt is itself older than the retention.
    assert deliveries_prune_all(now=NOW + timedelta(days=31)) == 1


def test_zero_days_keeps_every_delivery(channel: Channel, settings: SettingsWrapper) -> None:
    settings.SIMPLETUNER_NOTIFICATIONS_RETENTION_DAYS = 0
    delivery(channel, DeliveryStatus.DELIVERED, 3650)
    delivery(channel, DeliveryStatus.FAILED, 3650)
    assert deliveries_prune_all(now=NOW) == 0
    assert Delivery.objects.count() == 2


@pytest.mark.parametrize("days", [10**6, 10**12])
def test_more_days_than_the_calendar_holds_keeps_every_delivery(
    channel: Channel, settings: SettingsWrapper, days: int
) -> None:
    """An operator's "keep it all" as a big number: the cutoff would fall before year 1
    (OverflowError in the loop, every tick); nothing finished that long ago."""
    settings.SIMPLETUNER_NOTIFICATIONS_RETENTION_DAYS = days
    delivery(channel, DeliveryStatus.DELIVERED, 3650)
    assert deliveries_prune_all(now=NOW) == 0
    assert Delivery.objects.count() == 1


def test_deliveries_go_a_bounded_batch_at_a_time(channel: Channel, settings: SettingsWrapper) -> None:
    settings.SIMPLETUNER_NOTIFICATIONS_RETENTION_DAYS = 30
    old = NOW - timedelta(days=40)
    Delivery.objects.bulk_create(
        Delivery(
            channel=channel,
            event_type="job.failed",
            msg_id=f"bulk_{n}",
            payload={},
            status=DeliveryStatus.FAILED,
            created_at=old,
            next_attempt_at=old,
        )
        for n in range(PRUNE_BATCH + 3)
    )
    assert deliveries_prune(now=NOW) == PRUNE_BATCH
    assert Delivery.objects.count() == 3
    assert deliveries_prune_all(now=NOW) == 3
    assert not Delivery.objects.exists()


def test_the_worker_command_prunes_too(channel: Channel, settings: SettingsWrapper) -> None:
    """Where SIMPLETUNER_BACKGROUND_SYNC is off, `notifications_deliver` is the delivery
    worker (docs/notifications.md): without it the log grew forever there."""
    settings.SIMPLETUNER_NOTIFICATIONS_RETENTION_DAYS = 30
    old = delivery(channel, DeliveryStatus.DELIVERED, 40)
    Delivery.objects.filter(pk=old.pk).update(
        next_attempt_at=timezone.now() - timedelta(days=40), delivered_at=timezone.now() - timedelta(days=40)
    )
    young = delivery(channel, DeliveryStatus.DELIVERED, 0)
    Delivery.objects.filter(pk=young.pk).update(next_attempt_at=timezone.now(), delivered_at=timezone.now())
    out = io.StringIO()
    call_command("notifications_deliver", stdout=out)
    assert "1 finished deliveries past retention deleted" in out.getvalue()
    assert list(Delivery.objects.values_list("pk", flat=True)) == [young.pk]


def test_redelivering_a_delivery_retention_deleted_meanwhile_says_it_is_gone(
    channel: Channel, settings: SettingsWrapper
) -> None:
    """Read (the view's lookup), then pruned before the redelivery's UPDATE: "already pending;
    the worker will send it" (409) promised a send that never comes; it is a 404."""
    settings.SIMPLETUNER_NOTIFICATIONS_RETENTION_DAYS = 30
    read = delivery(channel, DeliveryStatus.FAILED, 45)
    assert deliveries_prune_all(now=NOW) == 1
    with pytest.raises(NotFound, match=f"Delivery {read.pk} no longer exists"):
        delivery_redeliver(delivery=read)
