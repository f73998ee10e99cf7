"""Approval rules in the admin: the same checks as the API."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client

from governance.models import ApprovalRule

pytestmark = pytest.mark.django_db

FORM = {
    "name": "a100s",
    "condition": "hardware_type",
    "threshold": '"gpu-a100*"',
    "applies_to_provider": "",
    "required_approver_level": "lead",
    "exempt_levels": "[]",
    "priority": "10",
    "enabled": "on",
}


def test_an_admin_adds_a_rule_in_the_admin(olivia: AbstractUser) -> None:
    client = Client()
    client.force_login(olivia)
    response = client.post("/admin/governance/approvalrule/add/", FORM)
    assert response.status_code == 302
    assert ApprovalRule.objects.get().threshold == "gpu-a100*"
    assert client.get("/admin/governance/approvalrule/").status_code == 200
    assert client.get("/admin/governance/approvalrequest/").status_code == 200


def test_the_admin_refuses_a_bad_glob_and_an_unknown_provider(olivia: AbstractUser) -> None:
    client = Client()
    client.force_login(olivia)
    response = client.post(
        "/admin/governance/approvalrule/add/", {**FORM, "threshold": '"gpu-[a100"', "applies_to_provider": "aws"}
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "never closed" in str(errors["threshold"]) and "unknown provider" in str(errors["applies_to_provider"])
    assert not ApprovalRule.objects.exists()


def test_the_admin_approves_and_rejects_selected_requests(olivia: AbstractUser, alice: AbstractUser) -> None:
    from governance.models import ApprovalRequest
    from providers.models import Job, JobStatus
    from tests.conftest import client_for
    from tests.providers.helpers import QUICK, submit

    ApprovalRule.objects.create(name="local jobs", condition="provider", threshold="local")
    alices = client_for(alice)
    first, second = (submit(alices, {"provider": "local", "config": QUICK}).json()["job_id"] for _ in range(2))
    client = Client()
    client.force_login(olivia)
    pk = ApprovalRequest.objects.get(job_id=first).pk
    response = client.post("/admin/governance/approvalrequest/", {"action": "approve", "_selected_action": [pk]})
    assert response.status_code == 302
    # Rejecting asks for a reason first, then cancels the job with it.
    pk = ApprovalRequest.objects.get(job_id=second).pk
    reject = {"action": "reject", "_selected_action": [pk]}
    question = client.post("/admin/governance/approvalrequest/", reject)
    assert question.status_code == 200 and 'name="reason"' in question.content.decode()
    assert ApprovalRequest.objects.get(job_id=second).status == "pending"
    response = client.post("/admin/governance/approvalrequest/", {**reject, "post": "yes", "reason": " too big "})
    assert response.status_code == 302
    assert ApprovalRequest.objects.get(job_id=first).status == "approved"
    assert Job.objects.get(pk=first).status != JobStatus.PENDING_APPROVAL
    assert (ApprovalRequest.objects.get(job_id=second).status, Job.objects.get(pk=second).status) == (
        "rejected",
        "cancelled",
    )
    assert ApprovalRequest.objects.get(job_id=second).decided_by == "olivia"
    assert ApprovalRequest.objects.get(job_id=second).decision_reason == "too big"
    assert Job.objects.get(pk=second).error == "Rejected by olivia: too big"


@pytest.mark.parametrize("reason", ["x" * 1001, "a\x00b"])
def test_the_admin_refuses_a_bad_reject_reason_and_rejects_nothing(
    olivia: AbstractUser, alice: AbstractUser, reason: str
) -> None:
    from governance.models import ApprovalRequest
    from tests.conftest import client_for
    from tests.providers.helpers import QUICK, submit

    ApprovalRule.objects.create(name="local jobs", condition="provider", threshold="local")
    job_id = submit(client_for(alice), {"provider": "local", "config": QUICK}).json()["job_id"]
    pk = ApprovalRequest.objects.get(job_id=job_id).pk
    client = Client()
    client.force_login(olivia)
    data = {"action": "reject", "_selected_action": [pk], "post": "yes", "reason": reason}
    response = client.post("/admin/governance/approvalrequest/", data, follow=True)
    assert response.status_code == 200
    assert "Nothing rejected" in response.content.decode()
    assert ApprovalRequest.objects.get(pk=pk).status == "pending"
