"""Slack and email channels against real local servers; destinations refused by default."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message
from django.contrib.auth.models import AbstractUser
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from cloudops.notify import notify
from notifications.delivery import deliveries_run
from notifications.models import Channel, Delivery, DeliveryStatus
from notifications.services import MAX_SUBSCRIPTIONS
from tests.notifications.conftest import Receiver
from tests.notifications.helpers import post, webhook_channel
from tests.providers.helpers import QUICK, submit
from tests.server.live import free_port

pytestmark = pytest.mark.django_db

CHANNELS = "/api/cloud/notifications/channels"
SUBSCRIPTIONS = "/api/cloud/notifications/subscriptions"


class Inbox(Message):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list = []

    def handle_message(self, message) -> None:  # type: ignore[no-untyped-def, override]
        self.messages.append(message)


@pytest.fixture
def smtp(settings: SettingsWrapper) -> Iterator[Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.SIMPLETUNER_SMTP_HOST = "127.0.0.1"
    settings.SIMPLETUNER_SMTP_PORT = controller.port
    settings.SIMPLETUNER_SMTP_TLS = False
    yield inbox
    controller.stop()


def test_a_slack_channel_posts_the_slack_format(staff_client: APIClient, receiver: Receiver) -> None:
    created = post(
        staff_client,
        CHANNELS,
        {"channel_type": "slack", "name": "team", "events": ["job.submitted"], "webhook_url": receiver.url},
    )
    assert created.status_code == 201, created.json()
    assert created.json()["secret"] == ""
    assert created.json()["channel"]["webhook_url"].endswith("/***")  # the path is Slack's token
    submit(staff_client, {"provider": "local", "config": QUICK, "name": "slacked"})
    assert deliveries_run() == 1
    (request,) = receiver.requests
    body = json.loads(request.body)
    assert body["text"].startswith("job.submitted: job slacked (local)")
    assert body["blocks"][0]["type"] == "section"
    assert "webhook-signature" not in request.headers


def test_an_email_channel_sends_through_a_real_smtp_server(staff_client: APIClient, smtp: Inbox) -> None:
    created = post(
        staff_client,
        CHANNELS,
        {"channel_type": "email", "name": "ops mail", "events": ["job.submitted"], "recipients": ["ops@example.com"]},
    )
    assert created.status_code == 201, created.json()
    submit(staff_client, {"provider": "local", "config": QUICK, "name": "mailed"})
    assert deliveries_run() == 1
    assert Delivery.objects.get().status == DeliveryStatus.DELIVERED
    (message,) = smtp.messages
    assert message["To"] == "ops@example.com"
    assert message["Subject"].startswith("[cloudops] job.submitted: job mailed")
    parsed = message_from_bytes(message.as_bytes())
    assert '"type": "job.submitted"' in parsed.get_payload()


def test_an_email_channel_needs_an_smtp_server(staff_client: APIClient) -> None:
    response = post(
        staff_client,
        CHANNELS,
        {"channel_type": "email", "name": "m", "events": ["job.failed"], "recipients": ["a@example.com"]},
    )
    assert response.status_code == 400, response.json()
    assert "SIMPLETUNER_SMTP_HOST" in response.json()["errors"]["channel_type"][0]


def test_a_user_subscribes_to_their_own_jobs_by_email(
    alice_client: APIClient, alice: AbstractUser, bob_client: APIClient, smtp: Inbox
) -> None:
    alice.email = "alice@example.com"
    alice.save()
    response = post(
        alice_client, "/api/cloud/notifications/subscriptions", {"channel_type": "email", "events": ["job.submitted"]}
    )
    assert response.status_code == 201, response.json()
    assert response.json()["channel"]["recipients"] == ["alice@example.com"]
    submit(bob_client, {"provider": "local", "config": QUICK})  # not hers: nothing
    submit(alice_client, {"provider": "local", "config": QUICK})
    assert deliveries_run() == 1
    assert [m["To"] for m in smtp.messages] == ["alice@example.com"]
    listed = alice_client.get("/api/cloud/notifications/subscriptions").json()
    assert listed["total"] == 1
    assert bob_client.get("/api/cloud/notifications/subscriptions").json()["total"] == 0
    mine = alice_client.get("/api/cloud/notifications/deliveries").json()
    assert mine["total"] == 1 and bob_client.get("/api/cloud/notifications/deliveries").json()["total"] == 0


def test_a_user_holds_at_most_max_subscriptions(alice_client: APIClient, bob_client: APIClient) -> None:
    body = {"channel_type": "webhook", "events": ["job.failed"], "url": "http://127.0.0.1:9/hook"}
    for _ in range(MAX_SUBSCRIPTIONS):
        assert post(alice_client, SUBSCRIPTIONS, body).status_code == 201
    response = post(alice_client, SUBSCRIPTIONS, body)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"You have {MAX_SUBSCRIPTIONS} subscriptions")
    assert Channel.objects.filter(owner__username="alice").count() == MAX_SUBSCRIPTIONS
    # The bound is per user.
    assert post(bob_client, SUBSCRIPTIONS, body).status_code == 201


def test_a_subscription_takes_only_own_job_events(alice_client: APIClient, receiver: Receiver) -> None:
    response = post(
        alice_client,
        "/api/cloud/notifications/subscriptions",
        {"channel_type": "webhook", "events": ["system.provider_error"], "url": receiver.url},
    )
    assert response.status_code == 400
    assert "unknown event 'system.provider_error'" in json.dumps(response.json()["errors"]["events"])


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:192.168.0.1]/hook",
        "http://0.0.0.0/hook",
        # Other spellings of 127.0.0.1 (the resolver reads them all as an IPv4 address).
        "http://127.1/hook",
        "http://0/hook",
        "http://2130706433/hook",
        "http://0x7f000001/hook",
        "http://017700000001/hook",
        "http://[::ffff:127.0.0.1]/hook",
        # IPv6 addresses wrapping a private IPv4 one: Python calls them global.
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
        "http://[64:ff9b:1::808:808]/hook",  # NAT64 local-use prefix
        "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
        "http://[::127.0.0.1]/hook",  # IPv4-compatible
    ],
)
def test_private_destinations_are_refused_without_the_setting(
    staff_client: APIClient, settings: SettingsWrapper, url: str
) -> None:
    settings.SIMPLETUNER_NOTIFICATIONS_ALLOW_PRIVATE = False
    response = post(
        staff_client, CHANNELS, {"channel_type": "webhook", "name": "x", "events": ["job.failed"], "url": url}
    )
    assert response.status_code == 400
    assert "SIMPLETUNER_NOTIFICATIONS_ALLOW_PRIVATE" in response.json()["errors"]["url"][0]
    assert Channel.objects.count() == 0


@pytest.mark.parametrize("url", ["http://[64:ff9b::808:808]/hook", "http://[2002:808:808::]/hook"])
def test_ipv6_wrapping_a_public_ipv4_address_is_accepted(
    staff_client: APIClient, settings: SettingsWrapper, url: str
) -> None:
    settings.SIMPLETUNER_NOTIFICATIONS_ALLOW_PRIVATE = False
    response = post(
        staff_client, CHANNELS, {"channel_type": "webhook", "name": "x", "events": ["job.failed"], "url": url}
    )
    assert response.status_code == 201, response.json()
    assert Channel.objects.get().url == url


def test_a_destination_that_turned_private_is_refused_at_send_time(
    staff_client: APIClient, settings: SettingsWrapper, receiver: Receiver
) -> None:
    webhook_channel(staff_client, receiver.url, ["credit.low"])
    settings.SIMPLETUNER_NOTIFICATIONS_ALLOW_PRIVATE = False
    notify("credit.low", {"provider": "replicate"})
    assert deliveries_run() == 1
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and "destination refused" in delivery.last_error
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"channel_type": "webhook", "name": "x", "events": ["job.nope"], "url": "http://a.example"},
            "events",
            "unknown",
        ),
        ({"channel_type": "webhook", "name": "x", "events": [], "url": "http://a.example"}, "events", "empty"),
        ({"channel_type": "webhook", "name": "x", "events": ["job.failed"]}, "url", "required"),
        ({"channel_type": "webhook", "name": "x", "events": ["job.failed"], "url": "ftp://a"}, "url", "http"),
        (
            {"channel_type": "webhook", "name": "x", "events": ["job.failed"], "url": "http://u:p@a.example"},
            "url",
            "credentials",
        ),
        (
            {"channel_type": "slack", "name": "x", "events": ["job.failed"], "url": "http://a.example"},
            "url",
            "not used",
        ),
        ({"channel_type": "pager", "name": "x", "events": ["job.failed"]}, "channel_type", "valid choice"),
        (
            {"channel_type": "webhook", "name": " ", "events": ["job.failed"], "url": "http://a.example"},
            "name",
            "blank",
        ),
        (
            {"channel_type": "webhook", "name": "x", "events": ["job.failed"], "url": "http://a.example", "x": 1},
            "x",
            "Unknown",
        ),
    ],
)
def test_bad_channels_are_refused_with_the_field_named(
    staff_client: APIClient, body: dict, field: str, message: str
) -> None:
    response = post(staff_client, CHANNELS, body)
    assert response.status_code == 400, response.json()
    assert message.lower() in json.dumps(response.json()["errors"][field]).lower()


def test_channels_are_for_staff_with_the_permission(
    alice_client: APIClient, clerk_client: APIClient, anon: APIClient
) -> None:
    assert alice_client.get(CHANNELS).status_code == 403
    assert clerk_client.get(CHANNELS).status_code == 403
    assert anon.get(CHANNELS).status_code == 401


def test_unknown_ids_and_bad_filters_answer_4xx(staff_client: APIClient, alice_client: APIClient) -> None:
    assert staff_client.get(f"{CHANNELS}/999").status_code == 404
    assert post(staff_client, f"{CHANNELS}/999/test").status_code == 404
    assert post(alice_client, f"{CHANNELS}/999/rotate-secret").status_code == 404
    assert post(staff_client, "/api/cloud/notifications/deliveries/999/redeliver").status_code == 404
    bad = staff_client.get("/api/cloud/notifications/deliveries?status=lost")
    assert bad.status_code == 400 and "status" in bad.json()["errors"]


def test_slack_channels_have_no_secret_to_rotate(staff_client: APIClient, receiver: Receiver) -> None:
    created = post(
        staff_client,
        CHANNELS,
        {"channel_type": "slack", "name": "t", "events": ["job.failed"], "webhook_url": receiver.url},
    ).json()
    response = post(staff_client, f"{CHANNELS}/{created['channel']['id']}/rotate-secret")
    assert response.status_code == 409


def test_deleting_a_channel_removes_it(staff_client: APIClient, receiver: Receiver) -> None:
    created = webhook_channel(staff_client, receiver.url, ["job.failed"])
    assert staff_client.delete(f"{CHANNELS}/{created['channel']['id']}").status_code == 204
    assert Channel.objects.count() == 0
