"""Subscriptions created at the same moment by one user stop at exactly MAX_SUBSCRIPTIONS.
Real threads with their own database connections post at once; the owner's row lock in
notifications.services.subscription_create makes them count one after the other."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import connection

from notifications.models import Channel
from notifications.services import MAX_SUBSCRIPTIONS
from tests.conftest import client_for
from tests.notifications.helpers import post

pytestmark = pytest.mark.django_db(transaction=True)

SUBSCRIPTIONS = "/api/cloud/notifications/subscriptions"
BODY = {"channel_type": "webhook", "events": ["job.failed"], "url": "http://127.0.0.1:9/hook"}
RACERS = 8
ROUNDS = 3


def race_creates(user: AbstractUser) -> list[tuple[int, str]]:
    """RACERS creates of `user` released together: (status, detail) of each."""
    clients = [client_for(user) for _ in range(RACERS)]
    barrier = threading.Barrier(RACERS)
    outcomes: list[tuple[int, str]] = []

    def create(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            response = post(clients[i], SUBSCRIPTIONS, BODY)
            outcomes.append((response.status_code, response.json().get("detail", "")))
        except Exception as exc:  # reported by the caller's assertions
            outcomes.append((0, repr(exc)))
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_simultaneous_creates_never_pass_the_subscription_cap(alice: AbstractUser) -> None:
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer at a time: the racers would queue, not race")
    free = RACERS // 2
    for _ in range(MAX_SUBSCRIPTIONS - free):
        Channel.objects.create(owner=alice, name="hook", channel_type="webhook", events=["job.failed"], url=BODY["url"])
    # Several rounds, each from `free` slots below the cap: one lucky interleaving must not
    # decide the outcome.
    for _ in range(ROUNDS):
        outcomes = race_creates(alice)
        assert sorted(status for status, _ in outcomes) == [201] * free + [400] * (RACERS - free), outcomes
        refusals = {detail for status, detail in outcomes if status == 400}
        assert refusals == {
            f"You have {MAX_SUBSCRIPTIONS} subscriptions, the most one user may hold; delete one first."
        }
        assert Channel.objects.filter(owner=alice).count() == MAX_SUBSCRIPTIONS
        newest = list(Channel.objects.filter(owner=alice).order_by("-pk").values_list("pk", flat=True)[:free])
        Channel.objects.filter(pk__in=newest).delete()
