"""The admin as an operator walks it in Chromium: a job's page (logs, outputs, cancel with a
confirmation), the coloured jobs list, and revoking an API key with a confirmation."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser
from playwright.sync_api import Page

from cloudops.apikeys import api_key_create
from cloudops.models import ApiKey
from providers.models import Job, JobStatus
from tests.admin_ui.browser import admin_login
from tests.admin_ui.test_admin_jobs import finished_local_job, queued_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_finished_jobs_page_shows_its_logs_and_downloads_its_outputs(
    page: Page, live_server, olivia: AbstractUser, alice: AbstractUser, tmp_path: Path
) -> None:
    job = finished_local_job(alice, tmp_path / "run")
    admin_login(page, live_server.url, "olivia")
    page.goto(f"{live_server.url}/admin/providers/job/{job.pk}/change/")
    assert page.is_visible(".job-status-completed")
    assert page.inner_text("pre.job-logs").splitlines()[-1] == "step 100"
    assert page.locator("input[type=submit]").count() == 0, "no Save button"
    with page.expect_download() as download:
        page.click("a.job-output >> text=model.safetensors")
    assert Path(download.value.path()).read_bytes() == b"weights" * 100
    page.click("a.job-logs-all")
    page.wait_for_url(f"**/admin/providers/job/{job.pk}/logs/")
    assert page.inner_text("body").splitlines()[0] == "step 1"


def test_cancelling_a_job_asks_first(page: Page, live_server, olivia: AbstractUser, alice: AbstractUser) -> None:
    job = queued_job(alice)
    admin_login(page, live_server.url, "olivia")
    page.goto(f"{live_server.url}/admin/providers/job/{job.pk}/change/")
    page.click("a.cancel-job")
    page.wait_for_url(f"**/admin/providers/job/{job.pk}/cancel/")
    assert "Cancel this job?" in page.inner_text("#content")
    page.click("a.cancel-link")  # "No, take me back"
    page.wait_for_url(f"**/admin/providers/job/{job.pk}/change/")
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    page.click("a.cancel-job")
    page.wait_for_url(f"**/admin/providers/job/{job.pk}/cancel/")
    page.click("input[name=confirm]")
    page.wait_for_url(f"**/admin/providers/job/{job.pk}/change/")
    assert f"Job {job.pk} is now cancelled." in page.inner_text("ul.messagelist")
    assert page.is_visible(".job-status-cancelled")
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED


def test_the_jobs_list_colours_statuses_and_cancels_after_a_confirmation(
    page: Page, live_server, olivia: AbstractUser, alice: AbstractUser
) -> None:
    job = queued_job(alice)
    Job.objects.create(owner=alice, provider="local", status=JobStatus.FAILED, error="CUDA out of memory")
    admin_login(page, live_server.url, "olivia")
    page.goto(f"{live_server.url}/admin/providers/job/")
    failed = page.locator(".job-status-failed")
    assert failed.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(185, 28, 28)"
    assert "CUDA out of memory" in page.inner_text("#result_list")
    page.check(f"input[name=_selected_action][value={job.pk}]")
    page.select_option("select[name=action]", "cancel_selected")
    page.click("button[name=index]")
    page.wait_for_selector(".confirm-question")
    assert "Cancel these 1 job(s)?" in page.inner_text("#content")
    page.click("input[name=confirm]")
    page.wait_for_selector("ul.messagelist")
    assert "1 job(s) are now cancelled." in page.inner_text("ul.messagelist")
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED


def test_revoking_an_api_key_asks_first(page: Page, live_server, olivia: AbstractUser, alice: AbstractUser) -> None:
    key, _ = api_key_create(owner=alice, name="laptop")
    admin_login(page, live_server.url, "olivia")
    page.goto(f"{live_server.url}/admin/cloudops/apikey/")
    page.check(f"input[name=_selected_action][value='{key.pk}']")
    page.select_option("select[name=action]", "revoke_selected")
    page.click("button[name=index]")
    page.wait_for_selector(".confirm-question")
    assert "Revoke these 1 API key(s)?" in page.inner_text("#content")
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None
    page.click("input[name=confirm]")
    page.wait_for_selector("ul.messagelist")
    assert "1 API key(s) are now revoked." in page.inner_text("ul.messagelist")
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
