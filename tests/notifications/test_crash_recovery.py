"""At least once across crashes: a process killed after the outbox write, or in the middle of
a send, loses nothing; the next worker delivers under the same webhook-id."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from cloudops.notify import notify
from notifications.delivery import deliveries_run
from notifications.models import Delivery, DeliveryStatus
from providers.models import Job, JobStatus
from tests.notifications.conftest import Receiver
from tests.notifications.helpers import webhook_channel
from tests.processes import django_env, spawn_django

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until(condition, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_process_killed_right_after_the_change_commits_still_notifies(
    staff_client: APIClient, alice: AbstractUser, receiver: Receiver
) -> None:
    created = webhook_channel(staff_client, receiver.url, ["job.completed"])
    job = Job.objects.create(owner=alice, provider="local", hardware="local", status=JobStatus.RUNNING)
    # The job moves and the process dies at once, before any worker could send anything.
    proc = spawn_django(
        f"""
        import os, signal
        from providers.jobs import job_transition
        from providers.models import Job
        job_transition(job=Job.objects.get(pk={job.pk!r}), to="completed", reason="done")
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        env=django_env(SIMPLETUNER_NOTIFICATIONS_ALLOW_PRIVATE="true"),
    )
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED
    assert Delivery.objects.get().status == DeliveryStatus.PENDING
    assert deliveries_run() == 1  # "after the restart"
    (request,) = receiver.requests
    assert Webhook(created["secret"]).verify(request.body, request.headers)["data"]["job_id"] == job.pk


def test_a_worker_killed_mid_send_is_taken_over_when_its_lease_expires(
    staff_client: APIClient, receiver: Receiver
) -> None:
    created = webhook_channel(staff_client, receiver.url, ["credit.low"])
    notify("credit.low", {"provider": "replicate", "balance_usd": 3.5})
    receiver.hang = threading.Event()  # the receiver holds the first request: the worker waits
    worker = spawn_django(
        "from notifications.delivery import deliveries_run\ndeliveries_run()\n",
        env=django_env(SIMPLETUNER_NOTIFICATIONS_ALLOW_PRIVATE="true"),
    )
    wait_until(lambda: len(receiver.requests) == 1)
    os.kill(worker.pid, signal.SIGKILL)
    worker.communicate(timeout=60)
    hung, receiver.hang = receiver.hang, None
    hung.set()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.lease_until is not None) == (DeliveryStatus.PENDING, 0, True)
    assert deliveries_run() == 0  # still leased to the dead worker
    later = timezone.now() + timedelta(seconds=settings.SIMPLETUNER_NOTIFICATIONS_LEASE_SECONDS + 1)
    assert deliveries_run(now=later) == 1
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.msg_id
    Webhook(created["secret"]).verify(second.body, second.headers)
    assert Delivery.objects.get().status == DeliveryStatus.DELIVERED


def test_two_workers_never_send_the_same_delivery(staff_client: APIClient, receiver: Receiver) -> None:
    webhook_channel(staff_client, receiver.url, ["credit.low"])
    for n in range(20):
        notify("credit.low", {"provider": f"p{n}"})
    code = "from notifications.delivery import deliveries_drain\nprint(deliveries_drain())\n"
    env = django_env(SIMPLETUNER_NOTIFICATIONS_ALLOW_PRIVATE="true")
    procs = [spawn_django(code, env=env) for _ in range(3)]
    made = [int(proc.communicate(timeout=120)[0].strip().splitlines()[-1]) for proc in procs]
    assert sum(made) == 20
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == len(receiver.requests) == 20
    assert Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 20
