"""Channel and delivery services: called alike by the API, the admin and commands; every
change audited in its transaction. Secrets are returned by create and rotate only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.exceptions import APIException, NotFound

from audit.services import audit_record
from cloudops import audit_events as events
from cloudops.accounts import user_row_lock
from cloudops.auditing import Actor
from notifications.models import Channel, ChannelType, Delivery, DeliveryStatus
from notifications.outbox import channel_test_enqueue
from notifications.signing import new_secret

# Subscriptions one user may hold: each is a delivery per event of their jobs, written in the
# transaction of the job's change, so their number is bounded like any other input.
MAX_SUBSCRIPTIONS = 20


class SubscriptionRefused(Exception):
    """Why a user may not subscribe (a 400 naming it)."""


class DeliveryConflict(APIException):
    status_code = 409
    default_code = "delivery_conflict"


@dataclass
class CreatedChannel:
    channel: Channel
    secret: str  # "" for Slack and email


def _username(request: HttpRequest | None) -> str:
    return Actor.from_request(request).username if request is not None else "system"


def _audit(channel: Channel, event_type: str, action: str, request: HttpRequest | None, **details: Any) -> None:
    audit_record(
        event_type=event_type,
        request=request,
        actor=None if request is not None else Actor(username="system"),
        target_type="notification_channel",
        target_id=channel.pk,
        action=action,
        details={"name": channel.name, "channel_type": channel.channel_type, **details},
    )


def channel_create(
    *, values: dict[str, Any], owner: User | None = None, request: HttpRequest | None = None
) -> CreatedChannel:
    """A channel (owner None) or a user's subscription (owner set); a webhook gets its secret."""
    secret = new_secret() if values["channel_type"] == ChannelType.WEBHOOK else ""
    with transaction.atomic():
        channel = Channel.objects.create(owner=owner, secret=secret, created_by=_username(request), **values)
        _audit(channel, events.NOTIFICATION_CHANNEL_CREATED, "create", request, events_list=channel.events)
    return CreatedChannel(channel=channel, secret=secret)


def subscription_create(*, values: dict[str, Any], owner: User, request: HttpRequest | None = None) -> CreatedChannel:
    """`owner`'s subscription to their own jobs' events, at most MAX_SUBSCRIPTIONS each; an
    email subscription goes to their own address. The owner's user row is locked before the
    count (as the quota check at submission does), so two creates of one user count one after
    the other and the bound is exact: PostgreSQL and MariaDB wait on the row lock; SQLite has
    one writer at a time anyway."""
    with transaction.atomic():
        user_row_lock(owner.pk)
        if Channel.objects.filter(owner=owner).count() >= MAX_SUBSCRIPTIONS:
            raise SubscriptionRefused(
                f"You have {MAX_SUBSCRIPTIONS} subscriptions, the most one user may hold; delete one first."
            )
        values = dict(values)
        if values["channel_type"] == ChannelType.EMAIL:
            if not owner.email:
                raise SubscriptionRefused("Your account has no email address; set one first.")
            values["recipients"] = [owner.email]
        values.setdefault("name", f"{owner.get_username()} {values['channel_type']}")
        return channel_create(values=values, owner=owner, request=request)


def channel_update(*, channel: Channel, changes: dict[str, Any], request: HttpRequest | None = None) -> Channel:
    """Change the fields given; enabling a channel clears why it was disabled."""
    with transaction.atomic():
        for name, value in changes.items():
            setattr(channel, name, value)
        if changes.get("enabled"):
            channel.disabled_reason = ""
        channel.save()
        _audit(channel, events.NOTIFICATION_CHANNEL_CHANGED, "update", request, changes=sorted(changes))
    return channel


def channel_delete(*, channel: Channel, request: HttpRequest | None = None) -> None:
    with transaction.atomic():
        _audit(channel, events.NOTIFICATION_CHANNEL_DELETED, "delete", request)
        channel.delete()


def channel_rotate_secret(*, channel: Channel, request: HttpRequest | None = None) -> str:
    """A new signing secret; the old one keeps signing (both signatures are sent) for
    SIMPLETUNER_NOTIFICATIONS_SECRET_GRACE_HOURS. Returns the new secret (shown once)."""
    if channel.channel_type != ChannelType.WEBHOOK:
        raise DeliveryConflict(f"Only webhook channels are signed; {channel.name} is a {channel.channel_type} channel.")
    grace = timedelta(hours=settings.SIMPLETUNER_NOTIFICATIONS_SECRET_GRACE_HOURS)
    secret = new_secret()
    with transaction.atomic():
        channel.previous_secret, channel.secret = channel.secret, secret
        channel.previous_secret_expires_at = timezone.now() + grace
        channel.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
        _audit(channel, events.NOTIFICATION_SECRET_ROTATED, "rotate", request, grace_hours=grace.total_seconds() / 3600)
    return secret


def channel_send_test(*, channel: Channel, request: HttpRequest | None = None) -> Delivery:
    """Queue a `test` event for this channel; the worker sends it like any other."""
    if not channel.enabled:
        raise DeliveryConflict(f"Channel {channel.name} is disabled; enable it to send a test event.")
    with transaction.atomic():
        delivery = channel_test_enqueue(channel, requested_by=_username(request))
        _audit(channel, events.NOTIFICATION_TEST_SENT, "test", request, msg_id=delivery.msg_id)
    return delivery


def delivery_redeliver(*, delivery: Delivery, request: HttpRequest | None = None) -> Delivery:
    """Send a delivered or failed delivery again, now, under its webhook-id (one more attempt;
    a failure then makes it `failed` again unless attempts remain)."""
    now = timezone.now()
    with transaction.atomic():
        reset = Delivery.objects.filter(pk=delivery.pk).exclude(status=DeliveryStatus.PENDING)
        if not reset.update(status=DeliveryStatus.PENDING, next_attempt_at=now, lease_until=None, lease_token=""):
            if not Delivery.objects.filter(pk=delivery.pk).exists():
                # Deleted since it was read: by retention (notifications.retention) or with its channel.
                raise NotFound(f"Delivery {delivery.pk} no longer exists; it was deleted.")
            raise DeliveryConflict(f"Delivery {delivery.pk} is already pending; the worker will send it.")
        audit_record(
            event_type=events.NOTIFICATION_REDELIVERED,
            request=request,
            actor=None if request is not None else Actor(username="system"),
            target_type="notification_delivery",
            target_id=delivery.pk,
            action="redeliver",
            details={"msg_id": delivery.msg_id, "channel_id": delivery.channel_id, "event": delivery.event_type},
        )
    delivery.refresh_from_db()
    return delivery
