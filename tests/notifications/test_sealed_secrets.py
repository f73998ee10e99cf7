"""Channels' signing secrets and Slack URLs are sealed in the database (cloudops.sealed): the
columns never hold them in the clear, deliveries still sign and post with them, a changed
server key makes them unreadable without losing them, and the migration seals existing rows
(and reverses)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from cloudops.sealed import PREFIX, Unreadable, seal, unseal
from notifications.delivery import deliveries_drain
from notifications.models import Channel, DeliveryAttempt
from notifications.senders import UNREADABLE_SECRET, UNREADABLE_SLACK_URL, signing_secrets
from notifications.services import channel_rotate_secret
from tests.notifications.conftest import Receiver
from tests.notifications.helpers import post, webhook_channel
from tests.providers.helpers import QUICK, submit

SLACK_URL = "https://hooks.slack.example/services/T000/B000/XXXXSECRETTOKEN"


def raw(channel_id: int) -> dict[str, str]:
    """The columns as stored, bypassing the model."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret, previous_secret, webhook_url FROM notifications_channel WHERE id = %s", [channel_id]
        )
        secret, previous, webhook_url = cursor.fetchone()
    return {"secret": secret, "previous_secret": previous, "webhook_url": webhook_url}


def write_raw(channel_id: int, **columns: str) -> None:
    assignments = ", ".join(f"{name} = %s" for name in columns)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE notifications_channel SET {assignments} WHERE id = %s", [*columns.values(), channel_id])


def slack_channel() -> Channel:
    return Channel.objects.create(name="team", channel_type="slack", events=["job.submitted"], webhook_url=SLACK_URL)


def test_seal_round_trips_and_differs_each_time() -> None:
    sealed, again = seal("purpose", "whsec_abc"), seal("purpose", "whsec_abc")
    assert sealed.startswith(PREFIX) and "whsec_abc" not in sealed and sealed != again
    assert unseal("purpose", sealed) == unseal("purpose", again) == "whsec_abc"
    assert seal("purpose", "") == "" and unseal("purpose", "") == ""
    assert unseal("purpose", "written before sealing") == "written before sealing"
    # Another purpose's key does not open it; nor does a mangled token.
    assert isinstance(unseal("other", sealed), Unreadable)
    assert isinstance(unseal("purpose", sealed[:-4] + "AAAA"), Unreadable)


@pytest.mark.django_db
def test_the_columns_hold_no_secret_in_the_clear(staff_client: APIClient) -> None:
    created = webhook_channel(staff_client, "https://hooks.example/in", ["job.submitted"])
    channel_id, secret = created["channel"]["id"], created["secret"]
    stored = raw(channel_id)
    assert stored["secret"].startswith(PREFIX) and secret not in stored["secret"]
    assert Channel.objects.get(pk=channel_id).secret == secret

    rotated = channel_rotate_secret(channel=Channel.objects.get(pk=channel_id))
    stored = raw(channel_id)
    assert secret not in stored["previous_secret"] and rotated not in stored["secret"]
    reloaded = Channel.objects.get(pk=channel_id)
    assert (reloaded.secret, reloaded.previous_secret) == (rotated, secret)

    slack = slack_channel()
    assert "XXXXSECRETTOKEN" not in raw(slack.pk)["webhook_url"]
    assert Channel.objects.get(pk=slack.pk).webhook_url == SLACK_URL
    listed = staff_client.get("/api/cloud/notifications/channels").json()
    assert "XXXXSECRETTOKEN" not in str(listed)


@pytest.mark.django_db(transaction=True)
def test_deliveries_sign_with_the_sealed_secret(
    staff_client: APIClient, alice_client: APIClient, receiver: Receiver
) -> None:
    created = webhook_channel(staff_client, receiver.url, ["job.submitted"])
    submit(alice_client, {"provider": "local", "config": QUICK})
    assert deliveries_drain() == 1
    (request,) = receiver.requests
    assert Webhook(created["secret"]).verify(request.body, request.headers)["type"] == "job.submitted"


@pytest.mark.django_db(transaction=True)
def test_a_changed_server_key_fails_deliveries_clearly_and_loses_nothing(
    staff_client: APIClient, alice_client: APIClient, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = webhook_channel(staff_client, receiver.url, ["job.submitted"])
    slack = slack_channel()
    hook = Channel.objects.get(pk=created["channel"]["id"])
    before = {hook.pk: raw(hook.pk), slack.pk: raw(slack.pk)}

    monkeypatch.setenv("SIMPLETUNER_SERVER_KEY", "a different server key")
    hook, slack = Channel.objects.get(pk=hook.pk), Channel.objects.get(pk=slack.pk)
    assert isinstance(hook.secret, Unreadable) and isinstance(slack.webhook_url, Unreadable)
    hook.save()  # saving the rows (an admin edit, say) keeps what was stored
    slack.save()
    assert {hook.pk: raw(hook.pk), slack.pk: raw(slack.pk)} == before
    listed = staff_client.get("/api/cloud/notifications/channels").json()
    assert "enter it again" in str(listed)

    submit(alice_client, {"provider": "local", "config": QUICK})
    deliveries_drain()
    assert receiver.requests == []  # nothing sent unsigned or to nowhere
    errors = set(DeliveryAttempt.objects.values_list("error", flat=True))
    assert errors == {UNREADABLE_SECRET, UNREADABLE_SLACK_URL}

    # The old key back: both read again.
    monkeypatch.delenv("SIMPLETUNER_SERVER_KEY")
    assert Channel.objects.get(pk=hook.pk).secret == created["secret"]
    assert Channel.objects.get(pk=slack.pk).webhook_url == SLACK_URL


@pytest.mark.django_db(transaction=True)
def test_a_rotation_after_a_key_change_makes_the_channel_sign_again(
    staff_client: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = webhook_channel(staff_client, "https://hooks.example/in", ["job.submitted"])
    monkeypatch.setenv("SIMPLETUNER_SERVER_KEY", "a different server key")
    channel_id = created["channel"]["id"]
    response = post(staff_client, f"/api/cloud/notifications/channels/{channel_id}/rotate-secret")
    assert response.status_code == 200, response.json()
    channel = Channel.objects.get(pk=channel_id)
    assert channel.secret == response.json()["secret"]
    assert isinstance(channel.previous_secret, Unreadable)  # kept for the grace period, never used
    channel.previous_secret_expires_at = timezone.now() + timedelta(hours=1)
    assert signing_secrets(channel) == [channel.secret]


# --- the migration ---------------------------------------------------------------------------------

BEFORE = [("notifications", "0002_pruned_tally")]
SEALED = [("notifications", "0003_sealed_secrets")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_seals_existing_rows_and_reverses() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = MigrationExecutor(connection).loader.project_state(BEFORE).apps.get_model("notifications", "Channel")
    hook = old.objects.create(name="h", channel_type="webhook", events=["job.failed"], secret="whsec_plain")
    slack = old.objects.create(name="s", channel_type="slack", events=["job.failed"], webhook_url=SLACK_URL)
    try:
        MigrationExecutor(connection).migrate(SEALED)
        assert raw(hook.pk)["secret"].startswith(PREFIX) and raw(slack.pk)["webhook_url"].startswith(PREFIX)
        assert Channel.objects.get(pk=hook.pk).secret == "whsec_plain"
        assert Channel.objects.get(pk=slack.pk).webhook_url == SLACK_URL

        MigrationExecutor(connection).migrate(BEFORE)
        assert raw(hook.pk)["secret"] == "whsec_plain" and raw(slack.pk)["webhook_url"] == SLACK_URL
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db
def test_a_row_written_before_sealing_reads_as_it_is() -> None:
    slack = slack_channel()
    write_raw(slack.pk, webhook_url=SLACK_URL)
    assert Channel.objects.get(pk=slack.pk).webhook_url == SLACK_URL
