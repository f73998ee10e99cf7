"""Channels and the delivery log in the admin: the same services and checks as the API.
A webhook channel's secret is shown once, in the message after it is created or rotated."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from cloudops.admin_confirm import act_on_each
from cloudops.notify import EVENT_TYPES
from notifications.destinations import DestinationRefused, check_destination
from notifications.models import Channel, ChannelType, Delivery, DeliveryAttempt
from notifications.serializers import TYPE_FIELDS, redact_slack_url
from notifications.services import (
    channel_create,
    channel_rotate_secret,
    channel_send_test,
    channel_update,
    delivery_redeliver,
)

EDITABLE = ["name", "channel_type", "events", "enabled", "url", "webhook_url", "recipients", "owner"]


class ChannelForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = EDITABLE

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        events = data.get("events")
        if not isinstance(events, list) or not events or not all(e in EVENT_TYPES for e in events):
            self.add_error("events", f"a non-empty list of: {', '.join(EVENT_TYPES)}")
        kind = data.get("channel_type")
        needed = TYPE_FIELDS.get(ChannelType(kind)) if kind else None
        if needed and not data.get(needed):
            self.add_error(needed, f"required for a {kind} channel.")
        for name in ("url", "webhook_url"):
            # Checked when set or changed (as the API does); every send checks it again.
            if data.get(name) and name in self.changed_data:
                try:
                    check_destination(data[name])
                except DestinationRefused as exc:
                    self.add_error(name, str(exc))
        return data


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["attempted_at", "ok", "status_code", "latency_ms", "error"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    # channel_create and channel_update audit these (without the secrets).
    audited_by_service = ("add", "change")
    actions = ["send_test", "rotate_secret"]
    list_display = ["name", "channel_type", "enabled", "owner", "destination", "last_success_at", "disabled_reason"]
    list_filter = ["channel_type", "enabled"]
    readonly_fields = ["last_success_at", "disabled_reason", "previous_secret_expires_at", "created_at", "created_by"]

    @admin.display(description="destination")
    def destination(self, channel: Channel) -> str:
        return channel.url or redact_slack_url(channel.webhook_url) or ", ".join(channel.recipients)

    def save_model(self, request: HttpRequest, obj: Channel, form: forms.ModelForm, change: bool) -> None:
        values = {name: form.cleaned_data[name] for name in EDITABLE if name in form.cleaned_data}
        if change:
            changes = {name: values[name] for name in form.changed_data if name in values}
            channel_update(channel=obj, changes=changes, request=request)
            return
        owner = values.pop("owner", None)
        created = channel_create(values=values, owner=owner, request=request)
        obj.pk = created.channel.pk
        if created.secret:
            self.message_user(request, f"Signing secret (shown only now): {created.secret}", messages.WARNING)

    @admin.action(description="Send a test event to the selected channels", permissions=["change"])
    def send_test(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        act_on_each(
            self,
            request,
            queryset,
            lambda c: channel_send_test(channel=c, request=request),
            done="test event(s) queued",
        )

    @admin.action(description="Rotate the signing secret of the selected webhook channels", permissions=["change"])
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        def rotate(channel: Channel) -> None:
            secret = channel_rotate_secret(channel=channel, request=request)
            self.message_user(request, f"{channel.name}: new secret (shown only now): {secret}", messages.WARNING)

        act_on_each(self, request, queryset, rotate, done="secret(s) rotated")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    actions = ["redeliver"]
    inlines = [AttemptInline]
    list_display = ["msg_id", "event_type", "channel", "status", "attempts", "next_attempt_at", "created_at"]
    list_filter = ["status", "event_type", "channel__channel_type"]
    list_select_related = ["channel"]
    search_fields = ["msg_id", "job_id"]
    readonly_fields = [field.name for field in Delivery._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Redeliver the selected deliveries", permissions=["change"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        act_on_each(
            self,
            request,
            queryset,
            lambda d: delivery_redeliver(delivery=d, request=request),
            done="redelivery(ies) queued",
        )
