"""Channels in the admin: created through the same service (the secret shown once, in the
message), refused destinations, the test-event action."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from audit.models import AuditEntry
from notifications.models import Channel, Delivery
from tests.notifications.conftest import Receiver

pytestmark = pytest.mark.django_db


def form(url: str, **extra: str) -> dict[str, str]:
    return {
        "name": "ops",
        "channel_type": "webhook",
        "events": '["job.failed"]',
        "enabled": "on",
        "url": url,
        "webhook_url": "",
        "recipients": "[]",
        "owner": "",
        **extra,
    }


def test_a_webhook_channel_added_in_the_admin_shows_its_secret_once(admin_client: Client, receiver: Receiver) -> None:
    response = admin_client.post("/admin/notifications/channel/add/", form(receiver.url), follow=True)
    assert response.status_code == 200
    channel = Channel.objects.get()
    shown = [str(m) for m in get_messages(response.wsgi_request)] + [response.content.decode()]
    assert any(channel.secret in text for text in shown)
    entry = AuditEntry.objects.get(event_type="notification_channel.created")
    assert entry.actor_username == "olivia" and channel.secret not in str(entry.details)
    page = admin_client.get(f"/admin/notifications/channel/{channel.pk}/change/").content.decode()
    assert channel.secret not in page


def test_the_admin_refuses_private_destinations_and_unknown_events(
    admin_client: Client, settings: SettingsWrapper
) -> None:
    settings.SIMPLETUNER_NOTIFICATIONS_ALLOW_PRIVATE = False
    response = admin_client.post("/admin/notifications/channel/add/", form("http://10.0.0.1/x", events='["nope"]'))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "SIMPLETUNER_NOTIFICATIONS_ALLOW_PRIVATE" in str(errors["url"]) and "events" in errors
    assert Channel.objects.count() == 0


def test_the_test_event_action_queues_one_delivery(admin_client: Client, receiver: Receiver) -> None:
    channel = Channel.objects.create(name="c", channel_type="webhook", events=["job.failed"], url=receiver.url)
    data = {"action": "send_test", "_selected_action": [channel.pk]}
    assert admin_client.post("/admin/notifications/channel/", data).status_code == 302
    assert list(Delivery.objects.values_list("event_type", "channel_id")) == [("test", channel.pk)]
