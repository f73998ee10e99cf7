"""The admin's job page: status, progress, error, logs, outputs, run time, cost, cancel."""

from __future__ import annotations

import socket
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from providers.models import Job, JobStatus
from providers.selectors import job_output_root
from tests.conftest import grant

pytestmark = pytest.mark.django_db


def page_url(job: Job, view: str = "change") -> str:
    return f"/admin/providers/job/{job.pk}/{view}/"


def finished_local_job(owner: AbstractUser, run_dir: Path) -> Job:
    """A completed local job whose log lives in its run directory (the API reads it there;
    nothing is stored on the row), with two output files in its bucket."""
    lines = [f"step {i}" for i in range(1, 101)]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "output.log").write_text("\n".join(lines) + "\n")
    now = timezone.now()
    job = Job.objects.create(
        name="lora",
        owner=owner,
        provider="local",
        status=JobStatus.COMPLETED,
        runner={"dir": str(run_dir), "host": socket.gethostname()},
        started_at=now,
        completed_at=now,
        run_seconds=3723.0,
        cost_usd=Decimal("1.250000"),
        progress={"current": 10, "total": 10, "percent": 100.0, "loss": 0.12},
        output_url="https://example.com/weights.tar",
    )
    bucket = job_output_root(job.pk) / job.pk
    (bucket / "samples").mkdir(parents=True)
    (bucket / "samples" / "a b.png").write_bytes(b"\x89PNG fake")
    (bucket / "model.safetensors").write_bytes(b"weights" * 100)
    return job


def queued_job(owner: AbstractUser) -> Job:
    return Job.objects.create(name="queued", owner=owner, provider="local", status=JobStatus.QUEUED)


def test_the_job_page_shows_status_progress_logs_outputs_run_time_and_cost(
    admin_client: Client, alice: AbstractUser, tmp_path: Path
) -> None:
    job = finished_local_job(alice, tmp_path / "run")
    page = admin_client.get(page_url(job)).content.decode()
    assert "job-status-completed" in page
    assert "step 10 / 10 (100.0%), loss 0.12" in page
    assert "step 100" in page and "step 61" in page, "the tail of the logs"
    assert "step 60\n" not in page, "only the last 40 lines"
    assert f'href="/admin/providers/job/{job.pk}/logs/"' in page
    assert f'href="/admin/providers/job/{job.pk}/output/samples/a%20b.png"' in page
    assert f'href="/admin/providers/job/{job.pk}/output/model.safetensors"' in page
    assert "https://example.com/weights.tar" in page
    assert "1 h 02 min 03 s" in page
    assert "1.250000" in page
    assert f"?target_type=job&amp;target_id={job.pk}" in page


def test_the_job_page_has_no_save_button_and_refuses_a_post(admin_client: Client, alice: AbstractUser) -> None:
    job = queued_job(alice)
    page = admin_client.get(page_url(job)).content.decode()
    assert 'name="_save"' not in page and 'name="_continue"' not in page
    assert "Cancel this job" in page
    assert admin_client.post(page_url(job), {"name": "renamed"}).status_code == 403
    assert Job.objects.get(pk=job.pk).name == "queued"


def test_all_logs_are_plain_text(admin_client: Client, alice: AbstractUser, tmp_path: Path) -> None:
    job = finished_local_job(alice, tmp_path / "run")
    response = admin_client.get(page_url(job, "logs"))
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode().splitlines() == [f"step {i}" for i in range(1, 101)]


def test_an_output_file_downloads(admin_client: Client, alice: AbstractUser, tmp_path: Path) -> None:
    job = finished_local_job(alice, tmp_path / "run")
    response = admin_client.get(f"/admin/providers/job/{job.pk}/output/samples/a%20b.png")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"\x89PNG fake"  # type: ignore[attr-defined]
    assert 'attachment; filename="a b.png"' in response["Content-Disposition"]


@pytest.mark.parametrize("key", ["missing.bin", "../other/file", "samples", "samples/../model.safetensors"])
def test_an_output_that_is_no_file_of_the_bucket_is_a_404(
    admin_client: Client, alice: AbstractUser, tmp_path: Path, key: str
) -> None:
    job = finished_local_job(alice, tmp_path / "run")
    assert admin_client.get(f"/admin/providers/job/{job.pk}/output/{key}").status_code == 404


def test_cancel_asks_first_then_cancels_through_the_service(admin_client: Client, alice: AbstractUser) -> None:
    job = queued_job(alice)
    question = admin_client.get(page_url(job, "cancel"))
    assert "Cancel this job?" in question.content.decode()
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED, "asking changes nothing"
    response = admin_client.post(page_url(job, "cancel"), {"post": "yes"}, follow=True)
    assert [str(m) for m in response.context["messages"]] == [f"Job {job.pk} is now cancelled."]
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    entry = AuditEntry.objects.get(event_type="job.cancelled")
    assert (entry.target_id, entry.actor_username) == (job.pk, "olivia")


def test_a_finished_job_has_nothing_to_cancel(admin_client: Client, alice: AbstractUser, tmp_path: Path) -> None:
    job = finished_local_job(alice, tmp_path / "run")
    assert "Not possible: the job is completed." in admin_client.get(page_url(job)).content.decode()
    assert "there is nothing to cancel" in admin_client.get(page_url(job, "cancel")).content.decode()
    response = admin_client.post(page_url(job, "cancel"), {"post": "yes"}, follow=True)
    assert "already completed" in str(list(response.context["messages"])[0])


def test_viewing_a_job_does_not_allow_cancelling_it(clerk: AbstractUser, alice: AbstractUser) -> None:
    client = Client()
    client.force_login(grant(clerk, "providers.view_job"))
    job = queued_job(alice)
    assert client.get(page_url(job)).status_code == 200
    assert client.get(page_url(job, "logs")).status_code == 200
    assert client.post(page_url(job, "cancel"), {"post": "yes"}).status_code == 403
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED


def test_the_cancel_action_asks_first(admin_client: Client, alice: AbstractUser) -> None:
    job = queued_job(alice)
    response = admin_client.post("/admin/providers/job/", {"action": "cancel_selected", "_selected_action": [job.pk]})
    assert "Cancel these 1 job(s)?" in response.content.decode()
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED


def test_the_jobs_list_shows_progress_error_and_coloured_status(admin_client: Client, alice: AbstractUser) -> None:
    Job.objects.create(
        owner=alice,
        provider="local",
        status=JobStatus.FAILED,
        error="CUDA out of memory " * 10,
        progress={"percent": 40},
    )
    page = admin_client.get("/admin/providers/job/").content.decode()
    assert "job-status-failed" in page and "background:#b91c1c" in page
    assert "40%" in page
    assert "CUDA out of memory CUDA" in page and "…" in page


def test_the_job_page_links_the_outputs_download_links(
    admin_client: Client, alice: AbstractUser, tmp_path: Path
) -> None:
    job = finished_local_job(alice, tmp_path / "run")
    page = admin_client.get(page_url(job)).content.decode()
    assert f'href="/api/cloud/jobs/{job.pk}/outputs"' in page
    # The link works with the admin's own session: the API answers with presigned links.
    listing = admin_client.get(f"/api/cloud/jobs/{job.pk}/outputs", HTTP_ACCEPT="application/json")
    assert listing.status_code == 200
    assert [o["key"] for o in listing.json()["objects"]] == ["model.safetensors", "samples/a b.png"]
    assert listing.json()["objects"][1]["url"].startswith(
        f"http://testserver/api/cloud/storage/{job.pk}/samples/a%20b.png?"
    )
