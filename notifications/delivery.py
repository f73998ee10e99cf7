"""The delivery worker: claim due outbox rows, send them, record each attempt, retry.

Claiming: where the database has `SELECT ... FOR UPDATE SKIP LOCKED` (PostgreSQL, MariaDB
10.6+), one short transaction locks up to `limit` due rows other workers have not locked and
leases them; elsewhere (SQLite) each due row is leased by its own conditional UPDATE, checked
by its row count. Either way a row is held by one worker until its lease
(SIMPLETUNER_NOTIFICATIONS_LEASE_SECONDS, longer than a send may take) runs out; sending
happens outside any transaction, and the outcome is written only by the holder of the lease.
A worker killed mid-send loses nothing: its rows come due again when their leases expire, and
are sent again under the same webhook-id (at least once: a receiver dedupes on it).

Retries: after a failed attempt the next comes RETRY_SCHEDULE[n] seconds later, +-20% jitter,
or after the receiver's Retry-After when that is longer (at most MAX_RETRY_AFTER). After the
last attempt the delivery is `failed`; if its channel has not succeeded once since that
delivery was queued (about a day of failures), the channel is disabled with an audit entry.
"""

from __future__ import annotations

import random
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.services import audit_record
from cloudops import audit_events as events
from cloudops.auditing import Actor
from cloudops.background import PeriodicThread
from cloudops.structured_logging import get_logger
from notifications.models import Channel, Delivery, DeliveryAttempt, DeliveryStatus
from notifications.senders import Outcome, send

logger = get_logger("simpletuner.cloud.notifications")

# Seconds before each retry: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 8 h
# (about 24 hours in all, 11 attempts).
RETRY_SCHEDULE = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
MAX_RETRY_AFTER = 86400.0
JITTER = 0.2
# Rows one claim leases: sent one after another, so BATCH x the timeout stays within the lease.
BATCH = 10


def retry_delay(failed_attempts: int, retry_after: float | None = None, *, rand: float | None = None) -> float:
    """Seconds until the next attempt after `failed_attempts` failures (1 = the first failed)."""
    base = RETRY_SCHEDULE[min(failed_attempts, len(RETRY_SCHEDULE)) - 1]
    fraction = random.random() if rand is None else rand
    delay = base * (1 - JITTER + 2 * JITTER * fraction)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def _due(now: datetime) -> QuerySet[Delivery]:
    enabled = Channel.objects.filter(enabled=True).values("pk")
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    return Delivery.objects.filter(free, status=DeliveryStatus.PENDING, next_attempt_at__lte=now, channel__in=enabled)


def claim(*, now: datetime, limit: int = BATCH) -> list[Delivery]:
    """Lease up to `limit` due deliveries to this caller (see the module); returns them."""
    token = secrets.token_hex(16)
    lease = {"lease_until": now + timedelta(seconds=settings.SIMPLETUNER_NOTIFICATIONS_LEASE_SECONDS)}
    lease["lease_token"] = token  # type: ignore[assignment]
    order = ("next_attempt_at", "id")
    if connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            rows = _due(now).order_by(*order).select_for_update(skip_locked=True)
            ids = list(rows.values_list("id", flat=True)[:limit])
            Delivery.objects.filter(pk__in=ids).update(**lease)
    else:
        candidates = list(_due(now).order_by(*order).values_list("id", flat=True)[:limit])
        ids = [pk for pk in candidates if _due(now).filter(pk=pk).update(**lease)]
    claimed = Delivery.objects.filter(pk__in=ids, lease_token=token).select_related("channel")
    return list(claimed.order_by(*order))


def deliveries_run(*, now: datetime | None = None, limit: int = BATCH) -> int:
    """One pass: claim what is due and send it; returns how many attempts were made."""
    batch = claim(now=now or timezone.now(), limit=limit)
    for delivery in batch:
        outcome = send(delivery)
        attempt_record(delivery=delivery, outcome=outcome, now=now or timezone.now())
    return len(batch)


def deliveries_drain(*, now: datetime | None = None, passes: int = 100) -> int:
    """Passes until nothing is due (at most `passes`); returns the attempts made."""
    total = 0
    for _ in range(passes):
        made = deliveries_run(now=now)
        total += made
        if not made:
            break
    return total


def _next_state(delivery: Delivery, outcome: Outcome, now: datetime) -> dict[str, object]:
    attempts = delivery.attempts + 1
    fields: dict[str, object] = {"attempts": attempts, "lease_until": None, "lease_token": ""}
    if outcome.ok:
        return {**fields, "status": DeliveryStatus.DELIVERED, "delivered_at": now, "last_error": ""}
    fields["last_error"] = outcome.error[:1000]
    if attempts >= MAX_ATTEMPTS:
        return {**fields, "status": DeliveryStatus.FAILED}
    return {**fields, "next_attempt_at": now + timedelta(seconds=retry_delay(attempts, outcome.retry_after))}


def attempt_record(*, delivery: Delivery, outcome: Outcome, now: datetime) -> None:
    """The attempt's log row and the delivery's new state, if this caller still holds the lease."""
    fields = _next_state(delivery, outcome, now)
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            attempted_at=now,
            ok=outcome.ok,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=outcome.error[:1000],
        )
        held = Delivery.objects.filter(pk=delivery.pk, lease_token=delivery.lease_token).update(**fields)
        if held and outcome.ok:
            Channel.objects.filter(pk=delivery.channel_id).update(last_success_at=now)
        if held and fields.get("status") == DeliveryStatus.FAILED:
            _disable_if_failing(delivery, last_error=outcome.error)
    for name, value in fields.items():
        setattr(delivery, name, value)
    log = logger.info if outcome.ok else logger.warning
    log(
        "notification delivered" if outcome.ok else "notification attempt failed",
        extra={
            "msg_id": delivery.msg_id,
            "channel_id": delivery.channel_id,
            "event": delivery.event_type,
            "attempt": delivery.attempts,
            "status_code": outcome.status_code,
            "error": outcome.error[:200],
        },
    )


def _disable_if_failing(delivery: Delivery, *, last_error: str) -> None:
    """Disable the channel when nothing succeeded on it since this delivery was queued; the
    reason quotes the last attempt's error (`delivery` still holds the one before it)."""
    no_success = Q(last_success_at__isnull=True) | Q(last_success_at__lt=delivery.created_at)
    reason = f"disabled after delivery {delivery.msg_id} failed {MAX_ATTEMPTS} times: {last_error}"[:500]
    rows = Channel.objects.filter(no_success, pk=delivery.channel_id, enabled=True)
    if not rows.update(enabled=False, disabled_reason=reason):
        return
    audit_record(
        event_type=events.NOTIFICATION_CHANNEL_DISABLED,
        actor=Actor(username="system"),
        target_type="notification_channel",
        target_id=delivery.channel_id,
        action="disable",
        details={"reason": reason, "msg_id": delivery.msg_id},
    )
    logger.warning("notification channel disabled", extra={"channel_id": delivery.channel_id, "reason": reason})


# --- The in-process loop ------------------------------------------------------------------------

_thread = PeriodicThread(
    "notifications", deliveries_drain, lambda: settings.SIMPLETUNER_NOTIFICATIONS_INTERVAL, wait_first=False
)


def start_notification_worker() -> bool:
    """Start this process's delivery loop once, where the background sync runs
    (SIMPLETUNER_BACKGROUND_SYNC). Every server process may run it: rows are claimed."""
    return bool(settings.SIMPLETUNER_BACKGROUND_SYNC and _thread.start())
