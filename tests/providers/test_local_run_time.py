"""Local jobs record their run time: the wall time from process start to end, also when the job
was reported completed by its own webhook, or cancelled, before its process exited (issue 16,
item 3). The run time gives the local cost and `simpletuner_job_duration_seconds_avg`."""

from __future__ import annotations

import json
import signal
import socket
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone
from rest_framework.test import APIClient

from providers.config import provider_config_get
from providers.credentials import local_webhook_secret
from providers.metrics import _compute_job_aggregates, collect_jobs
from providers.models import Job, JobStatus
from providers.sync import jobs_sync
from tests.providers.helpers import ENDLESS, python_command, submit, wait_for_status
from tests.providers.test_local_job_secrets import report
from tests.providers.test_local_provider import dead_runner, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

# Exits once the test creates the file `go` in the job's directory.
WAIT_FOR_GO = python_command(
    "import pathlib, time\nwhile not pathlib.Path('go').exists(): time.sleep(0.02)\nprint('done', flush=True)"
)
PRICE = "0.01"  # USD per second of the local "hardware", so the cost shows the run time


@pytest.fixture(autouse=True)
def priced_local_hardware() -> None:
    config = provider_config_get("local")
    config.hardware = {"local": {"price_per_second": PRICE}}
    config.save()


def exit_duration(job: Job) -> float:
    return json.loads((Path(job.runner["dir"]) / "exit.json").read_text())["duration"]


def run_time_recorded(job_id: str) -> Job:
    wait_until(lambda: Job.objects.get(pk=job_id).run_seconds is not None)
    return Job.objects.get(pk=job_id)


def test_a_job_completed_by_its_webhook_records_its_run_time_when_its_process_exits(
    staff_client: APIClient, anon: APIClient
) -> None:
    job_id = submit(staff_client, {"provider": "local", "config": {"command": WAIT_FOR_GO}}).json()["job_id"]
    job = wait_for_status(job_id, JobStatus.RUNNING)
    # The trainer says it is done before its process exits (final uploads, clean-up).
    assert report(anon, job_id, "completed", secret=local_webhook_secret(job_id)).status_code == 200
    ended = wait_for_status(job_id, JobStatus.COMPLETED)
    assert ended.run_seconds is None
    (Path(job.runner["dir"]) / "go").touch()
    stored = run_time_recorded(job_id)
    assert stored.status == JobStatus.COMPLETED
    assert stored.run_seconds == exit_duration(stored) and stored.run_seconds > 0
    assert stored.cost_usd == (Decimal(PRICE) * Decimal(str(stored.run_seconds))).quantize(Decimal("0.000001"))
    assert stored.completed_at == ended.completed_at  # the end is when it was reported, unchanged


def test_a_cancelled_job_records_its_run_time(alice_client: APIClient) -> None:
    job_id = submit(alice_client, {"provider": "local", "config": ENDLESS}).json()["job_id"]
    job = Job.objects.get(pk=job_id)
    log = Path(job.runner["dir"]) / "output.log"
    wait_until(lambda: log.exists() and "step 1/" in log.read_text())
    assert alice_client.post(f"/api/cloud/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    stored = run_time_recorded(job_id)
    assert stored.status == JobStatus.CANCELLED
    assert stored.run_seconds == exit_duration(stored) and stored.run_seconds > 0
    assert stored.cost_usd > 0
    body = alice_client.get(f"/api/cloud/jobs/{job_id}").json()["job"]
    assert body["run_seconds"] == stored.run_seconds


def test_a_failed_and_a_completed_job_record_their_run_time_and_the_average_appears(staff_client: APIClient) -> None:
    assert "simpletuner_job_duration_seconds_avg" not in {m.name for m in collect_jobs()}
    failing = submit(staff_client, {"provider": "local", "config": {"command": python_command("raise SystemExit(3)")}})
    failed = wait_for_status(failing.json()["job_id"], JobStatus.FAILED)
    done = wait_for_status(submit(staff_client).json()["job_id"], JobStatus.COMPLETED)
    assert failed.run_seconds == exit_duration(failed) and done.run_seconds == exit_duration(done)
    aggregates = _compute_job_aggregates()
    assert aggregates["runs"] == 2
    assert aggregates["run_seconds"] == pytest.approx(failed.run_seconds + done.run_seconds)


def ended_job(alice: AbstractUser, tmp_path: Path, exit_status: dict | None, **fields: object) -> Job:
    """A local job cancelled before its runner exited, as a server restart leaves it: no watcher."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    runner = dead_runner(tmp_path)
    if exit_status is not None:
        (Path(runner["dir"]) / "exit.json").write_text(json.dumps(exit_status))
    values = {"status": JobStatus.CANCELLED, "completed_at": timezone.now(), "cancel_requested_at": timezone.now()}
    values.update(fields)
    return Job.objects.create(
        owner=alice, provider="local", hardware="local", runner=runner, external_id=str(runner["pid"]), **values
    )


def test_after_a_restart_the_sync_records_the_run_time_of_an_ended_job(alice: AbstractUser, tmp_path: Path) -> None:
    # An exit file without `duration` (older runners' signal path): finished - started.
    job = ended_job(alice, tmp_path, {"returncode": 128 + signal.SIGTERM, "started_at": 1000.0, "finished_at": 1090.5})
    jobs_sync()
    stored = Job.objects.get(pk=job.pk)
    assert (stored.status, stored.run_seconds, stored.cost_usd) == (JobStatus.CANCELLED, 90.5, Decimal("0.905000"))
    assert stored.completed_at == job.completed_at and stored.error == ""


def test_a_runner_stopped_by_the_cancel_before_it_could_report_ran_until_the_cancel(
    alice: AbstractUser, tmp_path: Path
) -> None:
    # SIGTERM reached the runner while it was starting (or the group was killed): no exit file.
    cancelled_at = timezone.now()
    started = cancelled_at - timedelta(seconds=61)
    job = ended_job(alice, tmp_path, None, started_at=started, cancel_requested_at=cancelled_at)
    jobs_sync()
    stored = Job.objects.get(pk=job.pk)
    assert (stored.status, stored.run_seconds) == (JobStatus.CANCELLED, 61.0)


def test_the_sync_leaves_a_recorded_missing_or_foreign_run_time_alone(alice: AbstractUser, tmp_path: Path) -> None:
    recorded = ended_job(alice, tmp_path / "a", {"returncode": 0, "duration": 5.0}, run_seconds=7.0)
    no_exit_file = ended_job(alice, tmp_path / "b", None, status=JobStatus.FAILED, cancel_requested_at=None)
    foreign = ended_job(alice, tmp_path / "c", {"returncode": 0, "duration": 5.0})
    Job.objects.filter(pk=foreign.pk).update(runner={**foreign.runner, "host": socket.gethostname() + "-other"})
    garbage = ended_job(alice, tmp_path / "d", {"returncode": 0, "duration": "soon"})
    jobs_sync()
    assert Job.objects.get(pk=recorded.pk).run_seconds == 7.0
    assert Job.objects.get(pk=no_exit_file.pk).run_seconds is None
    assert Job.objects.get(pk=foreign.pk).run_seconds is None
    assert Job.objects.get(pk=garbage.pk).run_seconds is None
    assert Job.objects.get(pk=no_exit_file.pk).status == JobStatus.FAILED
    assert {j.status for j in Job.objects.exclude(pk=no_exit_file.pk)} == {JobStatus.CANCELLED}
