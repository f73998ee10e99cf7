"""Input and output bodies of /api/cloud/notifications/*: one parse per boundary."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from rest_framework import serializers

from cloudops.notify import EVENT_TYPES, OWN_JOB_EVENTS
from cloudops.sealed import Unreadable
from cloudops.serializers import StrictBooleanField, StrictCharField, StrictChoiceField, StrictInputSerializer
from notifications.destinations import DestinationRefused, check_destination
from notifications.models import Channel, ChannelType, Delivery, DeliveryAttempt, DeliveryStatus

MAX_RECIPIENTS = 20
# What each channel type needs, and the fields that belong to other types.
TYPE_FIELDS = {ChannelType.WEBHOOK: "url", ChannelType.SLACK: "webhook_url", ChannelType.EMAIL: "recipients"}


def _events_field(allowed: tuple[str, ...]) -> serializers.ListField:
    known = ", ".join(allowed)
    return serializers.ListField(
        child=StrictChoiceField(
            choices=list(allowed), error_messages={"invalid_choice": f"unknown event '{{input}}' (events: {known})."}
        ),
        allow_empty=False,
        max_length=len(allowed),
    )


def _url(value: str) -> str:
    try:
        check_destination(value)
    except DestinationRefused as exc:
        raise serializers.ValidationError(str(exc)) from None
    return value


class ChannelInputSerializer(StrictInputSerializer):
    """A channel as created (POST: channel_type, name, events and its type's destination) or
    changed (PATCH: only the fields sent; the type never changes)."""

    channel_type = StrictChoiceField(choices=ChannelType.choices)
    name = StrictCharField(max_length=100)
    events = _events_field(EVENT_TYPES)
    enabled = StrictBooleanField(required=False)
    url = StrictCharField(required=False, max_length=2048)
    webhook_url = StrictCharField(required=False, max_length=2048)
    recipients = serializers.ListField(
        child=StrictCharField(max_length=254), required=False, allow_empty=False, max_length=MAX_RECIPIENTS
    )

    def validate_name(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("may not be blank.")
        return value

    def validate_events(self, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    def validate_url(self, value: str) -> str:
        return _url(value)

    def validate_webhook_url(self, value: str) -> str:
        if urlsplit(value).scheme != "https" and not settings.SIMPLETUNER_NOTIFICATIONS_ALLOW_PRIVATE:
            raise serializers.ValidationError("a Slack incoming webhook URL starts with https://.")
        return _url(value)

    def validate_recipients(self, value: list[str]) -> list[str]:
        for address in value:
            try:
                validate_email(address)
            except DjangoValidationError:
                raise serializers.ValidationError(f"{address!r} is not an email address.") from None
        return list(dict.fromkeys(value))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if (
            self.instance is not None
            and "channel_type" in attrs
            and attrs["channel_type"] != self.instance.channel_type
        ):
            raise serializers.ValidationError({"channel_type": ["cannot be changed; create a new channel."]})
        kind = ChannelType(attrs.get("channel_type") or self.instance.channel_type)  # type: ignore[union-attr]
        needed = TYPE_FIELDS[kind]
        others = sorted(field for field in TYPE_FIELDS.values() if field != needed and field in attrs)
        if others:
            raise serializers.ValidationError(dict.fromkeys(others, f"not used by a {kind} channel."))
        if self.instance is None and needed not in attrs:
            raise serializers.ValidationError({needed: [f"required for a {kind} channel."]})
        if kind == ChannelType.EMAIL and self.instance is None and not settings.SIMPLETUNER_SMTP_HOST:
            raise serializers.ValidationError(
                {"channel_type": ["email needs an SMTP server: set SIMPLETUNER_SMTP_HOST (docs/notifications.md)."]}
            )
        return attrs


class ChannelCreateSerializer(ChannelInputSerializer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("channel_type", "name", "events"):
            self.fields[name].required = True


class ChannelPatchSerializer(ChannelInputSerializer):
    min_fields = 1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


class SubscriptionInputSerializer(StrictInputSerializer):
    """A user's own subscription: their jobs' events, to their account's email address or to
    a webhook URL."""

    channel_type = StrictChoiceField(choices=[ChannelType.EMAIL, ChannelType.WEBHOOK])
    name = StrictCharField(max_length=100, required=False)
    events = _events_field(OWN_JOB_EVENTS)
    url = StrictCharField(required=False, max_length=2048)

    def validate_url(self, value: str) -> str:
        return _url(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        attrs["events"] = list(dict.fromkeys(attrs["events"]))
        if attrs["channel_type"] == ChannelType.WEBHOOK and "url" not in attrs:
            raise serializers.ValidationError({"url": ["required for a webhook subscription."]})
        if attrs["channel_type"] == ChannelType.EMAIL:
            if "url" in attrs:
                raise serializers.ValidationError({"url": ["not used by an email subscription."]})
            if not settings.SIMPLETUNER_SMTP_HOST:
                raise serializers.ValidationError(
                    {"channel_type": ["email is not configured on this server (SIMPLETUNER_SMTP_HOST)."]}
                )
        return attrs


def redact_slack_url(url: str) -> str:
    """The scheme and host of a Slack URL: its path is the token."""
    if isinstance(url, Unreadable):
        return "(unreadable: sealed under another server key; enter it again)"
    if not url:
        return url
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/***"


class ChannelOutputSerializer(serializers.ModelSerializer):
    owner = serializers.SerializerMethodField()
    webhook_url = serializers.SerializerMethodField()
    secret_rotating_until = serializers.DateTimeField(source="previous_secret_expires_at", read_only=True)

    class Meta:
        model = Channel
        fields = [
            "id",
            "name",
            "channel_type",
            "events",
            "enabled",
            "url",
            "webhook_url",
            "recipients",
            "owner",
            "disabled_reason",
            "last_success_at",
            "secret_rotating_until",
            "created_at",
            "updated_at",
        ]

    def get_owner(self, channel: Channel) -> str | None:
        return channel.owner.get_username() if channel.owner is not None else None

    def get_webhook_url(self, channel: Channel) -> str:
        return redact_slack_url(channel.webhook_url)


class ChannelBodySerializer(serializers.Serializer):
    channel = ChannelOutputSerializer()


class ChannelCreatedSerializer(serializers.Serializer):
    channel = ChannelOutputSerializer()
    secret = serializers.CharField(help_text="webhook channels: the signing secret, shown only in this answer")


class ChannelListBodySerializer(serializers.Serializer):
    channels = ChannelOutputSerializer(many=True)
    total = serializers.IntegerField()


class SecretBodySerializer(serializers.Serializer):
    secret = serializers.CharField()
    previous_secret_valid_until = serializers.DateTimeField()


class DeliveryQuerySerializer(StrictInputSerializer):
    channel = serializers.IntegerField(required=False, min_value=1, max_value=2**62)
    status = StrictChoiceField(choices=DeliveryStatus.choices, required=False)
    event = StrictChoiceField(choices=[*EVENT_TYPES, "test"], required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)


class AttemptOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["attempted_at", "ok", "status_code", "latency_ms", "error"]


class DeliveryOutputSerializer(serializers.ModelSerializer):
    attempt_log = AttemptOutputSerializer(many=True, read_only=True)
    webhook_id = serializers.CharField(source="msg_id")

    class Meta:
        model = Delivery
        fields = [
            "id",
            "webhook_id",
            "channel_id",
            "event_type",
            "job_id",
            "status",
            "attempts",
            "next_attempt_at",
            "created_at",
            "delivered_at",
            "last_error",
            "payload",
            "attempt_log",
        ]


class DeliveryListBodySerializer(serializers.Serializer):
    deliveries = DeliveryOutputSerializer(many=True)
    total = serializers.IntegerField()


class DeliveryBodySerializer(serializers.Serializer):
    delivery = DeliveryOutputSerializer()
