"""Held submissions: recorded `pending_approval`, never at the provider and without working
upload credentials until approved; approve submits, reject and expiry cancel; every step is
audited and published as a live event."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import override_settings
from rest_framework.test import APIClient

from audit.models import AuditEntry
from governance.approvals import approvals_expire
from governance.models import ApprovalRequest, ApprovalRule
from providers.models import Job, JobStatus, LiveEvent
from storage import errors
from storage.credentials import credential_resolve
from tests.conftest import client_for
from tests.providers.helpers import QUICK, submit, wait_for_status

pytestmark = pytest.mark.django_db


@pytest.fixture
def local_rule() -> ApprovalRule:
    return ApprovalRule.objects.create(name="local jobs", condition="provider", threshold="local")


def held(client: APIClient, **body: Any) -> Job:
    response = submit(client, {"provider": "local", "config": QUICK, **body})
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "pending_approval"
    return Job.objects.get(pk=response.json()["job_id"])


def approve(client: APIClient, job: Job, reason: str = "") -> Any:
    return client.post(f"/api/approvals/requests/{job.approval.pk}/approve", {"reason": reason}, format="json")


def reject(client: APIClient, job: Job, reason: str = "") -> Any:
    return client.post(f"/api/approvals/requests/{job.approval.pk}/reject", {"reason": reason}, format="json")


def events_of(job: Job) -> list[str]:
    return list(AuditEntry.objects.filter(target_id=job.pk).order_by("sequence").values_list("event_type", flat=True))


def test_a_held_job_never_reaches_the_provider(
    alice_client: APIClient, local_rule: ApprovalRule, local_jobs_dir: Any
) -> None:
    response = submit(alice_client, {"provider": "local", "config": QUICK})
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending_approval"
    assert any("Held for approval (local jobs: submissions to local need approval)" in w for w in body["warnings"])
    job = Job.objects.get(pk=body["job_id"])
    assert (job.status, job.external_id, job.runner, job.start_claimed_at) == ("pending_approval", "", {}, None)
    assert not local_jobs_dir.exists() or not any(local_jobs_dir.iterdir())
    approval = ApprovalRequest.objects.get(job=job)
    assert (approval.status, approval.rule_name, approval.required_level) == ("pending", "local jobs", "lead")
    assert events_of(job) == ["job.submitted", "approval.requested"]
    assert LiveEvent.objects.filter(job_id=job.pk, kind="approval.requested").exists()


def test_a_held_jobs_upload_credentials_do_nothing(alice_client: APIClient, local_rule: ApprovalRule) -> None:
    job = held(alice_client)
    credential = credential_resolve(job.upload_token)
    assert credential is not None and not credential.can_read(job.pk)
    with pytest.raises(errors.AccessDenied, match="waiting for approval"):
        credential.check_write(job.pk, job.created_at)


def test_a_held_jobs_logs_are_the_stored_ones(alice_client: APIClient, local_rule: ApprovalRule) -> None:
    job = held(alice_client)
    response = alice_client.get(f"/api/cloud/jobs/{job.pk}/logs")
    assert response.status_code == 200 and response.json()["source"] == "stored"


def test_a_retry_of_a_held_submission_is_the_same_held_job(alice_client: APIClient, local_rule: ApprovalRule) -> None:
    body = {"provider": "local", "config": QUICK}
    first = submit(alice_client, body, **{"Idempotency-Key": "k1"}).json()
    again = submit(alice_client, body, **{"Idempotency-Key": "k1"})
    assert again.status_code == 200 and again.json()["job_id"] == first["job_id"]
    assert again.json()["status"] == "pending_approval" and ApprovalRequest.objects.count() == 1


def test_a_lead_approves_and_the_job_is_submitted(
    alice_client: APIClient, lena_client: APIClient, local_rule: ApprovalRule
) -> None:
    job = held(alice_client)
    response = approve(lena_client, job, "looks fine")
    assert response.status_code == 200, response.json()
    body = response.json()["request"]
    assert (body["status"], body["decided_by"], body["decision_reason"]) == ("approved", "lena", "looks fine")
    started = wait_for_status(job.pk, JobStatus.RUNNING, JobStatus.COMPLETED)
    assert started.external_id != ""
    assert events_of(job)[:4] == ["job.submitted", "approval.requested", "job.status_changed", "approval.granted"]
    assert LiveEvent.objects.filter(job_id=job.pk, kind="approval.granted").exists()
    assert approve(lena_client, job).status_code == 409


def test_reject_cancels_with_the_reason(
    alice_client: APIClient, lena_client: APIClient, local_rule: ApprovalRule
) -> None:
    job = held(alice_client)
    response = reject(lena_client, job, "use the smaller GPU")
    assert response.status_code == 200 and response.json()["request"]["status"] == "rejected"
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.error == "Rejected by lena: use the smaller GPU"
    assert job.external_id == ""
    entry = AuditEntry.objects.get(event_type="approval.rejected")
    assert (entry.actor_username, entry.details["decision_reason"]) == ("lena", "use the smaller GPU")
    assert LiveEvent.objects.filter(job_id=job.pk, kind="approval.rejected").exists()
    assert approve(lena_client, job).status_code == 409


def test_nobody_decides_their_own_submission(lena_client: APIClient, local_rule: ApprovalRule) -> None:
    job = held(lena_client)
    response = approve(lena_client, job)
    assert response.status_code == 403 and "your own" in response.json()["detail"]
    assert ApprovalRequest.objects.get().status == "pending"


def test_researchers_may_not_decide_others_requests(
    alice_client: APIClient, bob_client: APIClient, local_rule: ApprovalRule
) -> None:
    job = held(alice_client)
    assert approve(bob_client, job).status_code == 404
    assert reject(bob_client, job).status_code == 404
    assert ApprovalRequest.objects.get().status == "pending"


def test_an_admin_level_rule_needs_an_admin(
    alice_client: APIClient, lena_client: APIClient, adam_client: APIClient
) -> None:
    ApprovalRule.objects.create(name="admins", condition="provider", threshold="local", required_approver_level="admin")
    job = held(alice_client)
    refused = approve(lena_client, job)
    assert refused.status_code == 403 and "lead" in refused.json()["detail"]
    assert approve(adam_client, job).status_code == 200


def test_a_bad_reason_is_a_400_naming_it(
    alice_client: APIClient, lena_client: APIClient, local_rule: ApprovalRule
) -> None:
    job = held(alice_client)
    response = lena_client.post(f"/api/approvals/requests/{job.approval.pk}/reject", {"reason": 5}, format="json")
    assert response.status_code == 400 and "reason" in response.json()["errors"]
    assert ApprovalRequest.objects.get().status == "pending"


def test_the_owner_cancelling_a_held_job_ends_it_without_the_provider(
    alice_client: APIClient, lena_client: APIClient, local_rule: ApprovalRule
) -> None:
    job = held(alice_client)
    assert alice_client.post(f"/api/cloud/jobs/{job.pk}/cancel").status_code == 200
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.external_id == ""
    response = approve(lena_client, job)
    assert response.status_code == 409 and "cancelled" in response.json()["detail"]
    assert ApprovalRequest.objects.get().status == "pending"


def test_requests_are_listed_by_role_and_status(
    alice_client: APIClient, bob_client: APIClient, lena_client: APIClient, local_rule: ApprovalRule
) -> None:
    alices, bobs = held(alice_client), held(bob_client)
    reject(lena_client, bobs)
    assert {r["job_id"] for r in lena_client.get("/api/approvals/requests").json()["requests"]} == {alices.pk, bobs.pk}
    pending = lena_client.get("/api/approvals/requests?status=pending").json()["requests"]
    assert [r["job_id"] for r in pending] == [alices.pk]
    rejected = lena_client.get("/api/approvals/requests?status=rejected").json()["requests"]
    assert [(r["job_id"], r["submitter"]) for r in rejected] == [(bobs.pk, "bob")]
    assert [r["job_id"] for r in alice_client.get("/api/approvals/requests").json()["requests"]] == [alices.pk]
    for bad_status in ("maybe", ""):
        bad = lena_client.get(f"/api/approvals/requests?status={bad_status}")
        assert bad.status_code == 400 and "status" in bad.json()["errors"]


@override_settings(SIMPLETUNER_APPROVAL_TTL_HOURS=72)
def test_requests_expire_after_the_ttl_and_their_jobs_are_cancelled(
    alice_client: APIClient, lena_client: APIClient, local_rule: ApprovalRule
) -> None:
    job = held(alice_client)
    created = job.approval.created_at
    assert job.approval.expires_at == created + timedelta(hours=72)
    assert approvals_expire(now=created + timedelta(hours=71)) == 0
    assert approvals_expire(now=created + timedelta(hours=72, seconds=1)) == 1
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and "Approval expired" in job.error
    assert ApprovalRequest.objects.get().status == "expired"
    assert AuditEntry.objects.get(event_type="approval.expired").actor_username == "system"
    assert LiveEvent.objects.filter(job_id=job.pk, kind="approval.expired").exists()
    assert approvals_expire(now=created + timedelta(hours=100)) == 0
    assert approve(lena_client, job).status_code == 409


def test_a_user_without_a_rule_match_is_not_held(alice_client: APIClient) -> None:
    ApprovalRule.objects.create(name="replicate", condition="provider", threshold="replicate")
    response = submit(alice_client)
    assert response.status_code == 201 and response.json()["status"] != "pending_approval"


def test_a_viewer_sees_her_own_requests_only(
    vera: AbstractUser, alice_client: APIClient, local_rule: ApprovalRule
) -> None:
    held(alice_client)
    assert client_for(vera).get("/api/approvals/requests").json()["total"] == 0
