"""The notifications app's Prometheus metric source (settings.METRICS_SOURCES names it).

- simpletuner_notifications_sent_total{channel_type,event}: deliveries delivered;
- simpletuner_notification_failures_total{channel_type}: failed attempts;
- simpletuner_notification_queue_depth: deliveries waiting to be sent (pending).

Counted from the outbox tables every process shares, so any process answers for the whole
instance. They are counters as long as the rows are kept (nothing deletes deliveries); one
grouped count each, cached like the job aggregates (SIMPLETUNER_METRICS_CACHE_SECONDS).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import Count
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from cloudops.metrics.cache import cached
from notifications.models import Delivery, DeliveryAttempt, DeliveryStatus


def _compute() -> dict[str, Any]:
    sent = (
        Delivery.objects.filter(status=DeliveryStatus.DELIVERED)
        .order_by()
        .values("channel__channel_type", "event_type")
        .annotate(n=Count("*"))
    )
    failures = (
        DeliveryAttempt.objects.filter(ok=False)
        .order_by()
        .values("delivery__channel__channel_type")
        .annotate(n=Count("*"))
    )
    return {
        "sent": [[row["channel__channel_type"], row["event_type"], row["n"]] for row in sent],
        "failures": [[row["delivery__channel__channel_type"], row["n"]] for row in failures],
        "queue": Delivery.objects.filter(status=DeliveryStatus.PENDING).count(),
    }


def collect() -> Iterator[Metric]:
    numbers = cached("notifications", _compute)
    sent = CounterMetricFamily(
        "simpletuner_notifications_sent", "Notifications delivered.", labels=["channel_type", "event"]
    )
    for channel_type, event, n in numbers["sent"]:
        sent.add_metric([channel_type, event], n)
    yield sent
    failures = CounterMetricFamily(
        "simpletuner_notification_failures", "Failed notification delivery attempts.", labels=["channel_type"]
    )
    for channel_type, n in numbers["failures"]:
        failures.add_metric([channel_type], n)
    yield failures
    yield GaugeMetricFamily(
        "simpletuner_notification_queue_depth", "Notification deliveries waiting to be sent.", value=numbers["queue"]
    )
