"""Notification channels, the outbox of their deliveries and each delivery's attempts
(docs/notifications.md)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from cloudops.sealed import SealedField


class ChannelType(models.TextChoices):
    WEBHOOK = "webhook"
    SLACK = "slack"
    EMAIL = "email"


class Channel(models.Model):
    """Where events go. A channel without an owner is the operators' (every event it lists);
    one with an owner is that user's subscription to their own jobs' events.

    `secret` signs webhook deliveries (Standard Webhooks, `whsec_...`), shown once at creation
    and rotation and never again. After a rotation `previous_secret` still signs (both
    signatures are sent) until `previous_secret_expires_at`. The secrets and the Slack URL are
    sealed under the server key in the database (cloudops.sealed).
    """

    name = models.CharField(max_length=100)
    channel_type = models.CharField(max_length=8, choices=ChannelType.choices)
    events = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    url = models.CharField(max_length=2048, blank=True, default="", help_text="webhook: where deliveries are POSTed")
    webhook_url = SealedField(
        max_length=2048,
        blank=True,
        default="",
        purpose="slack-webhook-url",
        help_text="slack: the incoming webhook URL (a secret)",
    )
    recipients = models.JSONField(default=list, blank=True, help_text="email: addresses")
    secret = SealedField(max_length=128, blank=True, default="", purpose="notification-signing-secret")
    previous_secret = SealedField(max_length=128, blank=True, default="", purpose="notification-signing-secret")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notification_subscriptions",
    )
    disabled_reason = models.CharField(max_length=500, blank=True, default="")
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.channel_type})"

    def __repr__(self) -> str:
        # Never the secrets or the Slack URL (a token in its path).
        return f"<Channel {self.pk} {self.channel_type} {self.name!r}>"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Delivery(models.Model):
    """One event for one channel: the outbox row, written in the transaction of the change.

    A worker claims a due row by setting `lease_until` (and its `lease_token`) with a
    conditional UPDATE, sends it outside any transaction, then records the outcome only if it
    still holds the lease. A worker that dies leaves the lease to expire and another takes the
    row: at least once, under the same `msg_id` (the webhook-id) every time.
    """

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    event_type = models.CharField(max_length=64)
    msg_id = models.CharField(max_length=40, unique=True)
    payload = models.JSONField()
    job_id = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=1000, blank=True, default="")

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notif_delivery_due")]

    def __str__(self) -> str:
        return f"{self.msg_id} {self.event_type} -> {self.channel_id}: {self.status}"


class DeliveryAttempt(models.Model):
    """One try of a delivery: when, the answer's status code (None: no answer), how long it
    took, and what went wrong."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField(default=False)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(default=0)
    error = models.CharField(max_length=1000, blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.attempted_at:%Y-%m-%d %H:%M:%S} {self.status_code or self.error[:60]}"


class SentOnce(models.Model):
    """Keys of events announced once (cloudops.notify's `dedup_key`): the unique key is what
    every process agrees on."""

    key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.key


class PrunedTally(models.Model):
    """What retention (notifications.retention) deleted, as the metrics count it: `sent`, the
    delivered deliveries per (channel type, event); `failures`, the failed attempts per channel
    type (event blank). notifications.metrics adds these to the rows still kept, so its
    counters never go down when the delivery log is pruned."""

    metric = models.CharField(max_length=16)
    channel_type = models.CharField(max_length=8)
    event = models.CharField(max_length=64, blank=True, default="")
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["metric", "channel_type", "event"], name="notif_pruned_tally_key")
        ]

    def __str__(self) -> str:
        return f"{self.metric} {self.channel_type} {self.event}: {self.count}"
