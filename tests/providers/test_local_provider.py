"""The local provider with real processes (jobs run, finish, fail, get cancelled, outlive restarts)."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient
from standardwebhooks import Webhook

from audit.models import AuditEntry
from cloudops.auditing import Actor
from providers.config import provider_config_get
from providers.credentials import job_upload_bearer, job_upload_secret, local_webhook_secret
from providers.jobs import job_cancel
from providers.local import LocalProvider, kill_if_alive, orphans, process_start_ticks, runner_alive
from providers.models import Job, JobStatus
from providers.sync import jobs_sync
from tests.fakes.http import LoopbackServer, Recorded, Reply
from tests.providers.helpers import ENDLESS, python_command, submit, wait_for_status

pytestmark = pytest.mark.django_db(transaction=True)

DUMP_ENV = python_command("import json, os; open('env.json', 'w').write(json.dumps(dict(os.environ)))")


def wait_until(predicate, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def job_env(job: Job) -> dict[str, str]:
    return json.loads((Path(job.runner["dir"]) / "env.json").read_text())


def test_the_job_gets_the_environment_a_cloud_job_gets(
    staff_client: APIClient, settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_must_not_leak")
    settings.SIMPLETUNER_LOCAL_URL = "http://127.0.0.1:8123"
    job_id = submit(staff_client, {"provider": "local", "config": {"command": DUMP_ENV}}).json()["job_id"]
    job = wait_for_status(job_id, JobStatus.COMPLETED)
    env = job_env(job)
    assert env["SIMPLETUNER_JOB_ID"] == job.pk
    assert env["SIMPLETUNER_WEBHOOK_URL"] == "http://127.0.0.1:8123/api/webhooks/local"
    assert env["SIMPLETUNER_WEBHOOK_SECRET"] == local_webhook_secret(job.pk)
    assert len(base64.b64decode(env["SIMPLETUNER_WEBHOOK_SECRET"].removeprefix("whsec_"))) == 32
    assert env["AWS_ACCESS_KEY_ID"] == job.upload_token
    assert env["AWS_SECRET_ACCESS_KEY"] == job_upload_secret(job)
    assert env["AWS_ENDPOINT_URL_S3"] == env["SIMPLETUNER_S3_ENDPOINT"] == "http://127.0.0.1:8123/api/cloud/storage"
    assert env["SIMPLETUNER_S3_BUCKET"] == job.pk
    assert env["SIMPLETUNER_UPLOAD_TOKEN"] == job_upload_bearer(job.upload_token)
    assert json.loads(Path(env["SIMPLETUNER_JOB_CONFIG"]).read_text()) == {"command": DUMP_ENV}
    for leaked in ("REPLICATE_API_TOKEN", "DATABASE_URL", "SECRET_KEY", "SIMPLETUNER_SERVER_KEY"):
        assert leaked not in env


def test_the_public_url_and_s3_switch_shape_the_environment(staff_client: APIClient, settings: SettingsWrapper) -> None:
    settings.SIMPLETUNER_PUBLIC_URL = "https://tunnel.example.com"
    first = wait_for_status(
        submit(staff_client, {"provider": "local", "config": {"command": DUMP_ENV}}).json()["job_id"],
        JobStatus.COMPLETED,
    )
    assert job_env(first)["AWS_ENDPOINT_URL_S3"] == "https://tunnel.example.com/api/cloud/storage"
    config = provider_config_get("local")
    config.s3_public_url, config.s3_endpoint_enabled = "https://st.example.com", False
    config.save()
    second = wait_for_status(
        submit(staff_client, {"provider": "local", "config": {"command": DUMP_ENV, "n": 2}}).json()["job_id"],
        JobStatus.COMPLETED,
    )
    env = job_env(second)
    assert env["SIMPLETUNER_WEBHOOK_URL"] == "https://st.example.com/api/webhooks/local"
    assert "AWS_ACCESS_KEY_ID" not in env and "SIMPLETUNER_S3_BUCKET" not in env


def test_the_bundled_trainer_runs_to_completion(alice_client: APIClient) -> None:
    config = {"max_train_steps": 3, "step_seconds": 0.01, "checkpoint_size_mb": 0.1}
    job_id = submit(alice_client, {"provider": "local", "config": config}).json()["job_id"]
    job = wait_for_status(job_id, JobStatus.COMPLETED, JobStatus.FAILED)
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.progress["current"] == 3 and job.progress["percent"] == 100.0
    assert job.run_seconds is not None and job.run_seconds > 0
    assert job.cost_usd == Decimal("0")
    checkpoint = Path(job.runner["dir"]) / "output" / "checkpoint-3" / "model.safetensors"
    assert checkpoint.stat().st_size == int(0.1 * 1024 * 1024)
    assert "step 3/3" in job.logs and "training complete" in job.logs
    # Nothing listens at the storage endpoint here: the failure is logged, the job still completes.
    assert "upload of checkpoint-3/model.safetensors" in job.logs and "failed" in job.logs
    logs = alice_client.get(f"/api/cloud/jobs/{job_id}/logs").json()
    assert logs["status"] == "completed" and "training complete" in logs["logs"]


def s3_like(recorded: Recorded) -> Reply:
    """Answers a PutObject as S3 does (empty body, an ETag); anything else with 200 {}."""
    if recorded.method == "PUT":
        return Reply(body=b"", headers={"ETag": '"0123456789abcdef"'})
    return Reply(body={})


def test_the_trainer_signs_its_webhooks_and_uploads_with_its_credentials(alice_client: APIClient) -> None:
    with LoopbackServer(s3_like) as home:
        config = provider_config_get("local")
        config.s3_public_url = home.url()
        config.save()
        body = {"provider": "local", "config": {"max_train_steps": 2, "step_seconds": 0, "checkpoint_size_mb": 0.01}}
        job = wait_for_status(submit(alice_client, body).json()["job_id"], JobStatus.COMPLETED)
    hooks = [r for r in home.requests if r.path == "/api/webhooks/local"]
    events = [Webhook(local_webhook_secret(job.pk)).verify(r.body, r.headers) for r in hooks]
    assert [e["type"] for e in events] == [
        "training.status",
        "lifecycle.stage",
        "lifecycle.stage",
        "training.checkpoint",
        "training.status",
    ]
    assert events[0]["data"]["status"] == "running" and events[-1]["data"]["status"] == "completed"
    assert all(e["job_id"] == job.pk for e in events)
    (upload,) = [r for r in home.requests if r.method == "PUT"]
    assert upload.path == f"/api/cloud/storage/{job.pk}/checkpoint-2/model.safetensors"
    assert f"Credential={job.upload_token}/" in upload.headers["Authorization"]
    assert "uploaded checkpoint-2/model.safetensors" in job.logs


def test_a_non_zero_exit_fails_the_job_with_the_log_tail(staff_client: APIClient) -> None:
    command = python_command(
        "import sys\nfor i in range(50): print('line', i)\nprint('CUDA out of memory')\nsys.exit(3)"
    )
    job_id = submit(staff_client, {"provider": "local", "config": {"command": command}}).json()["job_id"]
    job = wait_for_status(job_id, JobStatus.FAILED)
    assert job.error.startswith("The command exited with status 3.")
    assert job.error.rstrip().endswith("CUDA out of memory")
    assert "line 49" in job.error
    change = AuditEntry.objects.filter(event_type="job.status_changed", target_id=job_id).order_by("-sequence").first()
    assert change.details["to"] == "failed" and change.details["source"] in ("local-runner", "sync", "submit")


def test_the_trainers_failure_path_fails_the_job(alice_client: APIClient) -> None:
    body = {"provider": "local", "config": {"max_train_steps": 5, "step_seconds": 0, "fail_at_step": 2}}
    job = wait_for_status(submit(alice_client, body).json()["job_id"], JobStatus.FAILED)
    assert "simulated failure at step 2" in job.error


def test_a_missing_program_fails_clearly(staff_client: APIClient) -> None:
    body = {"provider": "local", "config": {"command": ["/nonexistent/trainer"]}}
    job = wait_for_status(submit(staff_client, body).json()["job_id"], JobStatus.FAILED)
    assert "exited with status 127" in job.error and "cannot start" in job.error


def test_cancel_stops_the_process_with_sigterm(alice_client: APIClient, alice: AbstractUser) -> None:
    job_id = submit(alice_client, {"provider": "local", "config": ENDLESS}).json()["job_id"]
    job = Job.objects.get(pk=job_id)
    log = Path(job.runner["dir"]) / "output.log"
    wait_until(lambda: log.exists() and "step 1/" in log.read_text())
    response = alice_client.post(f"/api/cloud/jobs/{job_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled" and response.json()["job"]["status"] == "cancelled"
    wait_until(lambda: not runner_alive(job.runner))
    assert "received SIGTERM, stopping" in log.read_text()
    exit_status = json.loads((Path(job.runner["dir"]) / "exit.json").read_text())
    assert exit_status["returncode"] == 128 + signal.SIGTERM
    stored = Job.objects.get(pk=job_id)
    assert stored.status == JobStatus.CANCELLED and stored.cancel_requested_at is not None
    cancel = AuditEntry.objects.get(event_type="job.cancelled", target_id=job_id)
    assert cancel.actor_username == "alice"
    # The runner's exit status arrives after the cancel and changes nothing.
    jobs_sync()
    assert Job.objects.get(pk=job_id).status == JobStatus.CANCELLED


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(
    staff_client: APIClient, settings: SettingsWrapper
) -> None:
    settings.SIMPLETUNER_LOCAL_CANCEL_GRACE = 0.5
    stubborn = python_command(
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(600)"
    )
    job_id = submit(staff_client, {"provider": "local", "config": {"command": stubborn}}).json()["job_id"]
    job = Job.objects.get(pk=job_id)
    log = Path(job.runner["dir"]) / "output.log"
    wait_until(lambda: log.exists() and "ready" in log.read_text())
    assert staff_client.post(f"/api/cloud/jobs/{job_id}/cancel").status_code == 200
    assert runner_alive(job.runner)  # SIGTERM alone did not stop it
    wait_until(lambda: not runner_alive(job.runner), timeout=10)
    assert not (Path(job.runner["dir"]) / "exit.json").exists()  # SIGKILL: no chance to report


def test_cancelling_a_finished_job_is_a_409(alice_client: APIClient) -> None:
    job_id = submit(alice_client).json()["job_id"]
    wait_for_status(job_id, JobStatus.COMPLETED)
    response = alice_client.post(f"/api/cloud/jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert response.json() == {"detail": f"Job {job_id} is already completed."}
    assert not AuditEntry.objects.filter(event_type="job.cancelled").exists()


def dead_runner(tmp_path: Path) -> dict:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    ticks = process_start_ticks(proc.pid)
    proc.wait()
    directory = tmp_path / "job"
    directory.mkdir()
    (directory / "output.log").write_text("step 1/10\nstep 2/10\n")
    return {"pid": proc.pid, "start_ticks": ticks, "host": None, "dir": str(directory)}


def test_after_a_restart_a_job_whose_process_is_gone_fails_with_the_reason(alice: AbstractUser, tmp_path: Path) -> None:
    runner = dead_runner(tmp_path)
    job = Job.objects.create(
        owner=alice, provider="local", status=JobStatus.RUNNING, runner=runner, external_id=str(runner["pid"])
    )
    result = jobs_sync()
    stored = Job.objects.get(pk=job.pk)
    assert stored.status == JobStatus.FAILED
    assert stored.error.startswith("The local process is gone and left no exit status")
    assert "step 2/10" in stored.logs
    assert result.changed == {"failed": 1}


def test_after_a_restart_an_exit_status_left_behind_completes_the_job(alice: AbstractUser, tmp_path: Path) -> None:
    runner = dead_runner(tmp_path)
    (Path(runner["dir"]) / "exit.json").write_text(json.dumps({"returncode": 0, "duration": 42.0}))
    job = Job.objects.create(
        owner=alice, provider="local", status=JobStatus.RUNNING, runner=runner, external_id=str(runner["pid"])
    )
    jobs_sync()
    stored = Job.objects.get(pk=job.pk)
    assert (stored.status, stored.run_seconds) == (JobStatus.COMPLETED, 42.0)


def test_an_exit_after_a_cancel_request_is_a_cancellation_not_a_failure(alice: AbstractUser, tmp_path: Path) -> None:
    runner = dead_runner(tmp_path)
    (Path(runner["dir"]) / "exit.json").write_text(json.dumps({"returncode": 128 + signal.SIGTERM}))
    job = Job.objects.create(
        owner=alice,
        provider="local",
        status=JobStatus.RUNNING,
        runner=runner,
        external_id=str(runner["pid"]),
        cancel_requested_at=timezone.now(),
    )
    jobs_sync()
    stored = Job.objects.get(pk=job.pk)
    assert (stored.status, stored.error) == (JobStatus.CANCELLED, "")


def test_cancel_succeeds_when_the_runner_recorded_the_cancellation_first(
    alice: AbstractUser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race seen live: the watcher records the exit our SIGTERM caused between the
    # provider call and job_cancel's own transition. The caller still asked for exactly this.
    runner = dead_runner(tmp_path)
    job = Job.objects.create(
        owner=alice, provider="local", status=JobStatus.RUNNING, runner=runner, external_id=str(runner["pid"])
    )
    signal_sent = LocalProvider.cancel

    def cancel_then_watcher_records(self, **kwargs):  # type: ignore[no-untyped-def]
        state = signal_sent(self, **kwargs)
        Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED)  # the watcher's write, timed
        return state

    monkeypatch.setattr(LocalProvider, "cancel", cancel_then_watcher_records)
    cancelled = job_cancel(job=job, actor=Actor(username="alice"))
    assert cancelled.status == JobStatus.CANCELLED
    assert AuditEntry.objects.filter(event_type="job.cancelled", target_id=job.pk).count() == 1


def test_the_grace_kill_reaches_a_command_whose_runner_died(tmp_path: Path) -> None:
    # A runner killed before it set up its relay leaves its command running in its group.
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    spawn_and_exit = "import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])"
    leader = subprocess.Popen([sys.executable, "-c", spawn_and_exit], cwd=job_dir, start_new_session=True)
    runner = {"pid": leader.pid, "start_ticks": process_start_ticks(leader.pid), "dir": str(job_dir)}
    leader.wait()
    assert not runner_alive(runner)
    wait_until(lambda: len(orphans(runner)) == 1)
    assert kill_if_alive(runner)
    wait_until(lambda: orphans(runner) == [])


def test_after_a_restart_a_job_still_running_keeps_running(alice: AbstractUser, tmp_path: Path) -> None:
    directory = tmp_path / "job"
    directory.mkdir()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=directory)
    try:
        runner = {"pid": alive.pid, "start_ticks": process_start_ticks(alive.pid), "host": None, "dir": str(directory)}
        job = Job.objects.create(
            owner=alice, provider="local", status=JobStatus.RUNNING, runner=runner, external_id=str(alive.pid)
        )
        jobs_sync()
        assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
        # A recycled pid is not the same process: the recorded start time must match too.
        assert runner_alive({**runner, "start_ticks": runner["start_ticks"] + 1}) is False
    finally:
        alive.kill()
        alive.wait()


def test_an_unwritable_jobs_directory_fails_the_job_with_a_clear_503(
    alice_client: APIClient, settings: SettingsWrapper, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.SIMPLETUNER_LOCAL_JOBS_DIR = blocker / "jobs"
    response = submit(alice_client)
    assert response.status_code == 503
    assert response.json()["detail"].startswith("cannot start the local job:")
    assert Job.objects.get(pk=response.json()["job_id"]).status == JobStatus.FAILED
