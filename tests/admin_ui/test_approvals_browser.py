"""The approval admin in Chromium: an admin approves a held job from the list action and the
job goes on to its provider; rejecting asks for a reason, which the cancelled job carries."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser
from playwright.sync_api import Page

from governance.models import ApprovalRequest, ApprovalRule
from providers.models import Job, JobStatus
from tests.admin_ui.browser import admin_login
from tests.conftest import client_for
from tests.providers.helpers import QUICK, submit, wait_for_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CHANGELIST = "/admin/governance/approvalrequest/"


def _held(owner: AbstractUser) -> ApprovalRequest:
    response = submit(client_for(owner), {"provider": "local", "config": QUICK})
    assert response.json()["status"] == JobStatus.PENDING_APPROVAL, response.json()
    return ApprovalRequest.objects.get(job_id=response.json()["job_id"])


def _run_action(page: Page, approval: ApprovalRequest, action: str) -> None:
    page.check(f"input[name=_selected_action][value='{approval.pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def test_an_admin_approves_a_held_job_from_the_list_and_it_moves_on(
    page: Page, live_server, olivia: AbstractUser, alice: AbstractUser, local_jobs_dir: Path
) -> None:
    ApprovalRule.objects.create(name="local jobs", condition="provider", threshold="local")
    approval = _held(alice)
    admin_login(page, live_server.url, "olivia")
    page.goto(live_server.url + CHANGELIST)
    assert approval.job_id in page.inner_text("#result_list")
    _run_action(page, approval, "approve")
    page.wait_for_url(f"**{CHANGELIST}")
    assert "1 request(s) decided." in page.inner_text("ul.messagelist")
    approval.refresh_from_db()
    assert (approval.status, approval.decided_by) == ("approved", "olivia")
    job = wait_for_status(approval.job_id, JobStatus.RUNNING, JobStatus.COMPLETED)
    assert job.status != JobStatus.PENDING_APPROVAL and job.started_at is not None


def test_an_admin_rejects_a_held_job_with_a_reason(
    page: Page, live_server, olivia: AbstractUser, alice: AbstractUser, local_jobs_dir: Path
) -> None:
    ApprovalRule.objects.create(name="local jobs", condition="provider", threshold="local")
    approval = _held(alice)
    admin_login(page, live_server.url, "olivia")
    page.goto(live_server.url + CHANGELIST)
    _run_action(page, approval, "reject")
    assert "Reject these 1 request(s)?" in page.inner_text("#content")
    assert ApprovalRequest.objects.get(pk=approval.pk).status == "pending", "nothing happens before the confirmation"
    page.fill("#id_reason", "use gpu-l40s")
    page.click("input[name=confirm]")
    page.wait_for_url(f"**{CHANGELIST}")
    assert "1 request(s) decided." in page.inner_text("ul.messagelist")
    approval.refresh_from_db()
    assert (approval.status, approval.decision_reason) == ("rejected", "use gpu-l40s")
    job = Job.objects.get(pk=approval.job_id)
    assert (job.status, job.error) == (JobStatus.CANCELLED, "Rejected by olivia: use gpu-l40s")
