"""Retention of the delivery log: deliveries that finished (`delivered`, or `failed` after their
last attempt) more than SIMPLETUNER_NOTIFICATIONS_RETENTION_DAYS ago are deleted with their
attempts; 0 keeps them all. A `pending` delivery is never deleted, whatever its age: it is
still owed to its receiver.

"Finished" is when the last attempt was made: `delivered_at` for a delivered one (a
redelivery makes it pending again, so a delivery redelivered today, whenever it was first
queued, counts from today); a failed one's newest attempt row, not its `next_attempt_at`,
which says only when that attempt was due: a delivery waits on a disabled channel for as long
as the channel stays disabled, and fails for good the day it is enabled again. No attempt is
made before it is due, so `next_attempt_at` bounds the search through the index (status,
next_attempt_at): with nothing expired, one tick reads a handful of index pages; with a
backlog, a batch reads its 500 rows in id order and looks up the attempts of failed ones only
(EXPLAIN on PostgreSQL, 1M deliveries: 0.1 ms and 0.4 ms).

Rows go a batch at a time, each batch its own short statement (as the replay records of
inbound webhooks do, providers.webhooks.apply), so the worker's claims never wait long behind a
prune. Every server process may run the loop: deleting rows another process deleted a moment
ago deletes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from cloudops.background import PeriodicThread
from cloudops.structured_logging import get_logger
from notifications.models import Delivery, DeliveryAttempt, DeliveryStatus, PrunedTally

logger = get_logger("simpletuner.cloud.notifications")

PRUNE_BATCH = 500
FINAL_STATUSES = (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)


def expired_deliveries(now: datetime, days: int) -> QuerySet[Delivery]:
    """Deliveries that finished more than `days` days before `now` (see the module)."""
    try:
        cutoff = now - timedelta(days=days)
    except OverflowError:  # before year 1: nothing finished that long ago
        return Delivery.objects.none()
    tried_since = DeliveryAttempt.objects.filter(delivery=OuterRef("pk"), attempted_at__gte=cutoff)
    # A delivered one's delivered_at is its last attempt (a redelivery makes it pending again).
    delivered = Q(status=DeliveryStatus.DELIVERED, delivered_at__lt=cutoff)
    failed = Q(~Exists(tried_since), status=DeliveryStatus.FAILED)
    return Delivery.objects.filter(delivered | failed, status__in=FINAL_STATUSES, next_attempt_at__lt=cutoff)


def deliveries_prune(*, now: datetime | None = None, days: int | None = None) -> int:
    """Delete one batch of expired deliveries (and their attempts); how many deliveries."""
    days = settings.SIMPLETUNER_NOTIFICATIONS_RETENTION_DAYS if days is None else days
    if days <= 0:
        return 0
    expired = expired_deliveries(now or timezone.now(), days)
    with transaction.atomic():
        # Locked, so a redelivery of one of them (delivery_redeliver's conditional UPDATE)
        # either comes first and takes it out of the batch, or waits and finds it gone (a 409).
        # SQLite: one writer at a time, the same outcome.
        ids = list(expired.order_by("id").select_for_update().values_list("pk", flat=True)[:PRUNE_BATCH])
        if ids:
            _tally(ids)
            Delivery.objects.filter(pk__in=ids).delete()
    return len(ids)


def _tally(ids: list[int]) -> None:
    """Add what the metrics counted of these deliveries to PrunedTally, in the deleting
    transaction: the counters they feed must not go down (see notifications.metrics)."""
    sent = (
        Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.DELIVERED)
        .order_by()
        .values_list("channel__channel_type", "event_type")
        .annotate(n=Count("*"))
    )
    failures = (
        DeliveryAttempt.objects.filter(delivery_id__in=ids, ok=False)
        .order_by()
        .values_list("delivery__channel__channel_type")
        .annotate(n=Count("*"))
    )
    for channel_type, event, n in sent:
        _add("sent", channel_type, event, n)
    for channel_type, n in failures:
        _add("failures", channel_type, "", n)


def _add(metric: str, channel_type: str, event: str, n: int) -> None:
    key = {"metric": metric, "channel_type": channel_type, "event": event}
    if PrunedTally.objects.filter(**key).update(count=F("count") + n):
        return
    try:
        with transaction.atomic():
            PrunedTally.objects.create(**key, count=n)
    except IntegrityError:  # another process created it a moment ago
        PrunedTally.objects.filter(**key).update(count=F("count") + n)


def deliveries_prune_all(*, now: datetime | None = None, days: int | None = None, max_batches: int = 200) -> int:
    """Delete expired deliveries a batch at a time, up to `max_batches`; how many."""
    now = now or timezone.now()
    deleted = 0
    for _ in range(max_batches):
        batch = deliveries_prune(now=now, days=days)
        deleted += batch
        if batch < PRUNE_BATCH:
            break
    if deleted:
        logger.info("notification deliveries pruned", extra={"count": deleted})
    return deleted


# --- The in-process loop ------------------------------------------------------------------------

_thread = PeriodicThread(
    "notifications-retention", deliveries_prune_all, lambda: settings.SIMPLETUNER_SYNC_INTERVAL, wait_first=True
)


def start_delivery_retention() -> bool:
    """Start this process's retention loop once, every SIMPLETUNER_SYNC_INTERVAL seconds, where
    the background sync runs (SIMPLETUNER_BACKGROUND_SYNC)."""
    return bool(settings.SIMPLETUNER_BACKGROUND_SYNC and _thread.start())
