"""The notifications counters (simpletuner_notifications_sent_total,
simpletuner_notification_failures_total) are counted from the delivery log; retention deletes
from it, so what it deletes is tallied and the counters never go down: Prometheus reads any
drop as a reset and `increase()` over it as a burst of sends and failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from notifications.metrics import collect
from notifications.models import Channel, Delivery, DeliveryAttempt, DeliveryStatus, PrunedTally
from notifications.retention import deliveries_prune_all

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def counters() -> dict[str, dict[tuple[str, ...], float]]:
    return {
        family.name: {tuple(sample.labels.values()): sample.value for sample in family.samples}
        for family in collect()
        if family.type == "counter"
    }


def finished(channel: Channel, status: str, age_days: int, *, event: str, failed_attempts: int = 0) -> Delivery:
    at = NOW - timedelta(days=age_days)
    row = Delivery.objects.create(
        channel=channel,
        event_type=event,
        msg_id=f"{event}-{status}-{age_days}-{failed_attempts}",
        payload={},
        status=status,
        created_at=at,
        next_attempt_at=at,
        delivered_at=at if status == DeliveryStatus.DELIVERED else None,
    )
    for _ in range(failed_attempts):
        DeliveryAttempt.objects.create(delivery=row, attempted_at=at, ok=False, error="HTTP 503")
    if status == DeliveryStatus.DELIVERED:
        DeliveryAttempt.objects.create(delivery=row, attempted_at=at, ok=True, status_code=200)
    return row


def test_the_counters_do_not_go_down_when_retention_deletes(settings: SettingsWrapper) -> None:
    settings.SIMPLETUNER_METRICS_CACHE_SECONDS = 0
    settings.SIMPLETUNER_NOTIFICATIONS_RETENTION_DAYS = 30
    hook = Channel.objects.create(name="ops", channel_type="webhook", events=["job.failed"], url="https://ops.test/h")
    slack = Channel.objects.create(
        name="chat", channel_type="slack", events=["job.completed"], webhook_url="https://s.test"
    )
    finished(hook, DeliveryStatus.DELIVERED, 40, event="job.failed", failed_attempts=2)
    finished(hook, DeliveryStatus.DELIVERED, 1, event="job.failed")
    finished(hook, DeliveryStatus.FAILED, 45, event="job.failed", failed_attempts=3)
    finished(slack, DeliveryStatus.DELIVERED, 50, event="job.completed")
    before = counters()
    assert before["simpletuner_notifications_sent"][("webhook", "job.failed")] == 2
    assert before["simpletuner_notification_failures"][("webhook",)] == 5
    assert deliveries_prune_all(now=NOW) == 3
    assert counters() == before
    # A second prune adds to the tally rather than starting it again.
    finished(slack, DeliveryStatus.DELIVERED, 60, event="job.completed")
    assert deliveries_prune_all(now=NOW) == 1
    after = counters()
    assert after["simpletuner_notifications_sent"][("slack", "job.completed")] == 2
    assert after["simpletuner_notification_failures"] == before["simpletuner_notification_failures"]
    assert PrunedTally.objects.get(metric="sent", channel_type="slack", event="job.completed").count == 2
