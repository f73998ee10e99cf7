"""The outbox: events become delivery rows in the transaction of the change that caused them.

`notify` is settings.NOTIFIER, reached through cloudops.notify.notify. It reads the enabled
channels once, keeps those that want the event, and inserts one Delivery per channel, with the
payload fixed now (`type`, `timestamp`, `data`). Nothing is sent here and nothing waits for
the commit: a rollback takes the rows with it, and a commit makes them the worker's
(notifications.delivery), whatever happens to this process afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from cloudops.notify import OWN_JOB_EVENTS, TEST
from notifications.models import Channel, Delivery, SentOnce
from notifications.signing import new_msg_id


def wants(channel: Channel, event_type: str, owner_id: int | None) -> bool:
    """Whether `channel` subscribes to this event. A user's subscription hears only about
    that user's own jobs."""
    if not channel.enabled or event_type not in channel.events:
        return False
    if channel.owner_id is None:
        return True
    return owner_id == channel.owner_id and event_type in OWN_JOB_EVENTS


def _first_time(key: str) -> bool:
    """Claim `key` (a unique row); False if some process announced it already."""
    try:
        with transaction.atomic():  # a savepoint: the caller's transaction survives the conflict
            SentOnce.objects.create(key=key[:200])
    except IntegrityError:
        return False
    return True


def event_payload(event_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
    stamp = timezone.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"type": event_type, "timestamp": stamp, "data": dict(data)}


def notify(
    *,
    event_type: str,
    data: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    owner_id: int | None = None,
    dedup_key: str = "",
) -> int:
    """See cloudops.notify.notify: one outbox row per channel that wants the event."""
    candidates = Channel.objects.filter(Q(owner__isnull=True) | Q(owner_id=owner_id), enabled=True)
    channels = [channel for channel in candidates if wants(channel, event_type, owner_id)]
    if not channels or (dedup_key and not _first_time(dedup_key)):
        return 0
    payload = event_payload(event_type, data() if callable(data) else data)
    return len(enqueue(channels, event_type=event_type, payload=payload))


def enqueue(channels: list[Channel], *, event_type: str, payload: dict[str, Any]) -> list[Delivery]:
    job_id = str(payload["data"].get("job_id") or "")[:64]
    rows = [
        Delivery(channel=channel, event_type=event_type, msg_id=new_msg_id(), payload=payload, job_id=job_id)
        for channel in channels
    ]
    return Delivery.objects.bulk_create(rows)


def channel_test_enqueue(channel: Channel, *, requested_by: str) -> Delivery:
    """A `test` event for this one channel (whatever events it lists)."""
    data = {"channel": channel.name, "requested_by": requested_by, "message": "A test event from cloudops."}
    return enqueue([channel], event_type=TEST, payload=event_payload(TEST, data))[0]
