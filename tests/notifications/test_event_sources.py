"""Every event is queued where it happens, in the transaction of the change: job and approval
events, cost and credit, an opened circuit, a failed audit verification, rejected webhooks."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import AbstractUser, Group
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.services import audit_record
from audit.verification import audit_verify
from cloudops.auditing import Actor
from cloudops.notify import EVENT_TYPES, notify
from governance.approvals import approvals_expire
from governance.models import ApprovalRule, Quota
from notifications.models import Channel, Delivery
from providers.circuit import circuit_record_failure
from providers.config import provider_config_get, provider_config_update
from providers.jobs import job_transition
from providers.models import Job, JobStatus
from providers.webhooks.receive import webhook_reject
from tests.audit import tamper
from tests.conftest import client_for
from tests.providers.helpers import QUICK, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def everything() -> Channel:
    """An operators' channel listening to every event (never sent to in these tests)."""
    return Channel.objects.create(name="all", channel_type="webhook", events=list(EVENT_TYPES), url="https://x.test")


def queued() -> list[str]:
    return list(Delivery.objects.order_by("id").values_list("event_type", flat=True))


def payload(event: str) -> dict:
    return Delivery.objects.filter(event_type=event).latest("id").payload


@pytest.fixture
def lena_client(make_user) -> APIClient:  # type: ignore[no-untyped-def]
    lena = make_user("lena")
    lena.groups.add(Group.objects.get(name="lead"))
    return client_for(type(lena).objects.get(pk=lena.pk))


def held(client: APIClient) -> Job:
    ApprovalRule.objects.get_or_create(name="local jobs", condition="provider", threshold="local")
    response = submit(client, {"provider": "local", "config": QUICK})
    assert response.json()["status"] == "pending_approval"
    return Job.objects.get(pk=response.json()["job_id"])


def test_approval_events_are_queued_with_the_decision(
    everything: Channel, alice_client: APIClient, lena_client: APIClient
) -> None:
    job = held(alice_client)
    assert queued() == ["job.submitted", "approval.required"]
    assert payload("approval.required")["data"]["approval"]["rule"] == "local jobs"
    response = lena_client.post(f"/api/approvals/requests/{job.approval.pk}/reject", {"reason": "no"}, format="json")
    assert response.status_code == 200
    assert queued()[2:] == ["job.cancelled", "approval.rejected"]
    rejected = payload("approval.rejected")["data"]
    assert (rejected["job_id"], rejected["owner"], rejected["status"]) == (job.pk, "alice", "cancelled")
    assert rejected["approval"]["decided_by"] == "lena"


def test_granted_and_expired_approvals_are_queued(
    everything: Channel, alice_client: APIClient, lena_client: APIClient
) -> None:
    granted = held(alice_client)
    lena_client.post(f"/api/approvals/requests/{granted.approval.pk}/approve", {}, format="json")
    assert "approval.granted" in queued()
    expiring = held(alice_client)
    approvals_expire(now=expiring.approval.expires_at + timedelta(seconds=1))
    assert payload("approval.expired")["data"]["job_id"] == expiring.pk


def test_a_subscription_hears_of_its_owners_jobs_only(
    alice: AbstractUser, alice_client: APIClient, bob_client: APIClient, lena_client: APIClient
) -> None:
    Channel.objects.create(
        name="mine", channel_type="webhook", owner=alice, events=["approval.required"], url="https://x.test"
    )
    held(bob_client)
    assert queued() == []
    held(alice_client)
    assert queued() == ["approval.required"]


def test_a_rolled_back_change_queues_nothing(everything: Channel, alice: AbstractUser) -> None:
    job = Job.objects.create(owner=alice, provider="local", hardware="local", status=JobStatus.RUNNING)
    with pytest.raises(RuntimeError), transaction.atomic():
        job_transition(job=job, to=JobStatus.FAILED, reason="boom")
        assert queued() == ["job.failed"]
        raise RuntimeError("the change fails after the transition")
    assert queued() == []


def test_an_unwatched_transition_costs_one_query(alice: AbstractUser) -> None:
    job = Job.objects.create(owner=alice, provider="local", hardware="local", status=JobStatus.QUEUED)
    with CaptureQueriesContext(connection) as ctx:
        job_transition(job=job, to=JobStatus.RUNNING)
    channel_reads = [q for q in ctx.captured_queries if "notifications_channel" in q["sql"]]
    assert len(channel_reads) == 1
    assert not [q for q in ctx.captured_queries if "notifications_delivery" in q["sql"]]


def test_an_opened_circuit_is_a_provider_error(everything: Channel, settings) -> None:  # type: ignore[no-untyped-def]
    settings.SIMPLETUNER_CIRCUIT_FAILURE_THRESHOLD = 2
    circuit_record_failure("replicate", probe=False, error="HTTP 502")
    assert queued() == []
    circuit_record_failure("replicate", probe=False, error="HTTP 502")
    circuit_record_failure("replicate", probe=False, error="HTTP 502")  # already open: no second event
    assert queued() == ["system.provider_error"]
    assert payload("system.provider_error")["data"]["provider"] == "replicate"


def test_a_failed_audit_verification_is_announced(everything: Channel) -> None:
    audit_record(event_type="job.submitted", actor=Actor(username="alice"))
    assert audit_verify(trigger="command").ok
    tamper.edit_entry(1, action="forged")
    assert not audit_verify(trigger="command").ok
    data = payload("system.audit_verification_failed")["data"]
    assert data["ok"] is False and data["trigger"] == "command" and "head_last_mac" not in data


def test_rejected_webhooks_are_announced_once_per_window(everything: Channel) -> None:
    for _ in range(3):
        webhook_reject(provider="local", ip="203.0.113.9", reason="bad_signature", status_code=401, detail="no")
    assert queued() == ["system.webhook_rejected"]


def test_cost_limits_and_low_credit_are_announced_once(everything: Channel, alice_client: APIClient) -> None:
    config = provider_config_get("local")
    changes = {"cost_limit_enabled": True, "cost_limit_amount": Decimal("0"), "credit_balance_usd": Decimal("1")}
    changes["credit_low_usd"] = Decimal("5")
    provider_config_update(provider_config=config, changes=changes, actor=Actor())
    submit(alice_client, {"provider": "local", "config": QUICK})
    submit(alice_client, {"provider": "local", "config": QUICK})
    events = queued()
    assert events.count("cost.exceeded") == 1 and events.count("credit.low") == 1
    assert payload("credit.low")["data"]["provider"] == "local"


def test_a_blocking_and_a_warning_quota_are_announced_with_the_submission(
    everything: Channel, alice: AbstractUser, alice_client: APIClient
) -> None:
    Quota.objects.create(scope="global", quota_type="jobs_per_day", limit=1, action="warn")
    submit(alice_client, {"provider": "local", "config": QUICK})
    submit(alice_client, {"provider": "local", "config": QUICK})  # the second job of the day: warned
    warned = payload("quota.warning")["data"]
    assert (warned["user"], warned["action"], warned["limit"], warned["usage"]) == ("alice", "warn", 1, 1)
    assert warned["quota"]["quota_type"] == "jobs_per_day" and warned["job_id"]
    Quota.objects.create(scope="user", target="alice", quota_type="concurrent_jobs", limit=0)
    refused = submit(alice_client, {"provider": "local", "config": QUICK})
    assert refused.status_code == 403, refused.json()
    exceeded = payload("quota.exceeded")["data"]
    assert (exceeded["user"], exceeded["action"], exceeded["job_id"]) == ("alice", "block", None)
    assert exceeded["quota"]["quota_type"] == "concurrent_jobs"
    assert Delivery.objects.filter(event_type="quota.exceeded", channel=everything).count() == 1


def test_an_unknown_event_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown notification event"):
        notify("quota.nope", {})
