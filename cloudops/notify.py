"""How the rest of the code announces an event to outbound notifications (docs/notifications.md).

Apps and the library call `notify(...)` where the change happens, inside its transaction: the
notifications app (settings.NOTIFIER, `notifications.outbox.notify`) writes one outbox row per
channel that wants the event, in that same transaction, so the event and the change commit or
roll back together. Without a subscribed channel it writes nothing and costs one query.

The event names are the public vocabulary receivers filter on: never rename one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

JOB_SUBMITTED = "job.submitted"
JOB_STARTED = "job.started"
JOB_COMPLETED = "job.completed"
JOB_FAILED = "job.failed"
JOB_CANCELLED = "job.cancelled"
APPROVAL_REQUIRED = "approval.required"
APPROVAL_GRANTED = "approval.granted"
APPROVAL_REJECTED = "approval.rejected"
APPROVAL_EXPIRED = "approval.expired"
QUOTA_WARNING = "quota.warning"
QUOTA_EXCEEDED = "quota.exceeded"
COST_WARNING = "cost.warning"
COST_EXCEEDED = "cost.exceeded"
CREDIT_LOW = "credit.low"
SYSTEM_PROVIDER_ERROR = "system.provider_error"
SYSTEM_WEBHOOK_REJECTED = "system.webhook_rejected"
SYSTEM_AUDIT_VERIFICATION_FAILED = "system.audit_verification_failed"
# Sent only by "send test event" (API and admin), to the one channel it is asked for.
TEST = "test"

EVENT_TYPES = (
    JOB_SUBMITTED,
    JOB_STARTED,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_CANCELLED,
    APPROVAL_REQUIRED,
    APPROVAL_GRANTED,
    APPROVAL_REJECTED,
    APPROVAL_EXPIRED,
    QUOTA_WARNING,
    QUOTA_EXCEEDED,
    COST_WARNING,
    COST_EXCEEDED,
    CREDIT_LOW,
    SYSTEM_PROVIDER_ERROR,
    SYSTEM_WEBHOOK_REJECTED,
    SYSTEM_AUDIT_VERIFICATION_FAILED,
)

# The events about one user's own job: the ones a user may subscribe to for themselves.
OWN_JOB_EVENTS = tuple(name for name in EVENT_TYPES if name.startswith(("job.", "approval.")))

Data = Mapping[str, Any] | Callable[[], Mapping[str, Any]]


@cache
def _notifier() -> Any:
    return import_string(settings.NOTIFIER)


def notify(event_type: str, data: Data, *, owner_id: int | None = None, dedup_key: str = "") -> int:
    """Queue `event_type` for every enabled channel subscribed to it; returns how many
    deliveries were queued. Call it inside the transaction of the change it reports.

    `data` is the payload's `data` object, or a function returning it (called only when some
    channel wants the event, so an unwatched event costs no query to describe). `owner_id`: the
    user whose job the event is about (their own subscriptions get it too). `dedup_key`: an
    event with a key already sent is dropped (a condition noticed by many requests, such as a
    cost limit reached, is announced once per key).
    """
    if event_type not in EVENT_TYPES and event_type != TEST:
        raise ValueError(f"unknown notification event {event_type!r}")
    return int(_notifier()(event_type=event_type, data=data, owner_id=owner_id, dedup_key=dedup_key))
