"""The notifications app's Prometheus metric source (settings.METRICS_SOURCES names it).

- simpletuner_notifications_sent_total{channel_type,event}: deliveries delivered;
- simpletuner_notification_failures_total{channel_type}: failed attempts;
- simpletuner_notification_queue_depth: deliveries waiting to be sent (pending).

Counted from the outbox tables every process shares, so any process answers for the whole
instance, plus what retention deleted (PrunedTally, written as it deletes), so the counters do
not go down when the delivery log is pruned; one grouped count each, cached like the job
aggregates (SIMPLETUNER_METRICS_CACHE_SECONDS).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from django.db.models import Count
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from cloudops.metrics.cache import cached
from notifications.models import Delivery, DeliveryAttempt, DeliveryStatus, PrunedTally


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
    sent_totals = Counter({(row["channel__channel_type"], row["event_type"]): row["n"] for row in sent})
    failure_totals = Counter({row["delivery__channel__channel_type"]: row["n"] for row in failures})
    for tally in PrunedTally.objects.all():
        if tally.metric == "sent":
            sent_totals[(tally.channel_type, tally.event)] += tally.count
        else:
            failure_totals[tally.channel_type] += tally.count
    return {
        "sent": [[channel_type, event, n] for (channel_type, event), n in sorted(sent_totals.items())],
        "failures": [[channel_type, n] for channel_type, n in sorted(failure_totals.items())],
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
