"""The background sync: stale jobs only, one process at a time, never on the request path."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.management import call_command
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from providers import sync
from providers.config import provider_config_get
from providers.models import CircuitBreaker, CircuitState, Job, JobStatus, Lease
from providers.replicate import ReplicateProvider
from providers.sync import LEASE_NAME, jobs_sync, lease_acquire
from tests.fakes.replicate import FakeReplicate
from tests.processes import django_env, spawn_django, wait_all
from tests.providers.helpers import race, wait_for_status

pytestmark = pytest.mark.django_db


def prediction_job(owner: AbstractUser, replicate: FakeReplicate, *, synced_ago: timedelta | None) -> Job:
    """A queued Replicate job whose prediction exists at the fake."""
    created = ReplicateProvider().create_prediction(
        provider_config_get("replicate"), version=replicate.version, inputs={"config_json": "{}"}, webhook=None
    )
    synced = timezone.now() - synced_ago if synced_ago is not None else None
    return Job.objects.create(
        owner=owner,
        provider="replicate",
        status=JobStatus.QUEUED,
        hardware="gpu-l40s",
        external_id=created["id"],
        last_synced_at=synced,
    )


def test_only_jobs_whose_status_is_stale_are_polled(alice: AbstractUser, replicate: FakeReplicate) -> None:
    fresh = prediction_job(alice, replicate, synced_ago=timedelta(seconds=10))
    stale = prediction_job(alice, replicate, synced_ago=timedelta(minutes=10))
    never = prediction_job(alice, replicate, synced_ago=None)
    result = jobs_sync()
    polled = {r.path.rsplit("/", 1)[1] for r in replicate.requests_to("GET", "/predictions/")}
    assert polled == {stale.external_id, never.external_id}
    assert fresh.external_id not in polled
    assert result.checked == 2
    assert Job.objects.get(pk=stale.pk).last_synced_at > timezone.now() - timedelta(seconds=5)


def test_terminal_jobs_are_never_polled(alice: AbstractUser, replicate: FakeReplicate) -> None:
    job = prediction_job(alice, replicate, synced_ago=None)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED)
    assert jobs_sync().checked == 0
    assert replicate.requests_to("GET", "/predictions/") == []


def test_an_open_circuit_skips_the_provider_for_the_pass(alice: AbstractUser, replicate: FakeReplicate) -> None:
    for _ in range(3):
        prediction_job(alice, replicate, synced_ago=None)
    CircuitBreaker.objects.filter(provider="replicate").update(state=CircuitState.OPEN, opened_at=timezone.now())
    result = jobs_sync()
    assert (result.checked, result.errors) == (1, 1)
    assert replicate.requests_to("GET", "/predictions/") == []


def test_a_submission_that_never_reached_the_provider_fails_eventually(
    alice: AbstractUser, settings: SettingsWrapper
) -> None:
    settings.SIMPLETUNER_SUBMIT_TIMEOUT = 60
    stuck = Job.objects.create(owner=alice, provider="replicate", created_at=timezone.now() - timedelta(minutes=5))
    recent = Job.objects.create(owner=alice, provider="replicate")
    jobs_sync()
    stuck.refresh_from_db()
    assert stuck.status == JobStatus.FAILED
    assert "never reached the provider" in stuck.error
    assert Job.objects.get(pk=recent.pk).status == JobStatus.PENDING


def test_the_lease_admits_one_holder_until_it_expires() -> None:
    now = timezone.now()
    assert lease_acquire(LEASE_NAME, "host-a:1", now=now) is True
    assert lease_acquire(LEASE_NAME, "host-b:2", now=now) is False
    assert lease_acquire(LEASE_NAME, "host-a:1", now=now + timedelta(seconds=30)) is True  # renewal
    expired = Lease.objects.get(name=LEASE_NAME).expires_at + timedelta(seconds=1)
    assert lease_acquire(LEASE_NAME, "host-b:2", now=expired) is True
    assert Lease.objects.get(name=LEASE_NAME).holder == "host-b:2"


def test_a_crashed_holder_is_taken_over_within_two_sync_intervals(settings: SettingsWrapper) -> None:
    # The defect: a 300 s floor left a finished local job `running` for minutes after the
    # lease holder was killed (kill -9 never releases the lease).
    settings.SIMPLETUNER_SYNC_INTERVAL = 30
    started = timezone.now()
    assert lease_acquire(LEASE_NAME, "crashed:1", now=started) is True
    assert lease_acquire(LEASE_NAME, "survivor:2", now=started + timedelta(seconds=59)) is False
    assert lease_acquire(LEASE_NAME, "survivor:2", now=started + timedelta(seconds=61)) is True
    assert jobs_sync(holder="survivor:2", now=started + timedelta(seconds=61)).ran


def test_a_pass_while_another_process_holds_the_lease_does_nothing(
    alice: AbstractUser, replicate: FakeReplicate
) -> None:
    prediction_job(alice, replicate, synced_ago=None)
    lease_acquire(LEASE_NAME, "elsewhere:99")
    result = jobs_sync()
    assert result.ran is False
    assert result.summary() == "another process holds the sync lease (elsewhere:99); nothing done"
    assert replicate.requests_to("GET", "/predictions/") == []


def test_the_command_runs_one_pass_and_says_what_it_did(alice: AbstractUser, replicate: FakeReplicate) -> None:
    job = prediction_job(alice, replicate, synced_ago=None)
    replicate.advance(job.external_id, "succeeded", predict_time=10)
    out = StringIO()
    call_command("sync_jobs", stdout=out)
    assert out.getvalue().strip() == "checked 1 jobs: 1 completed; 0 errors"
    assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED
    assert not Lease.objects.exists()  # released after the pass


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_passes_in_several_processes_never_overlap(
    alice: AbstractUser, replicate: FakeReplicate, tmp_path: Path
) -> None:
    for _ in range(2):
        prediction_job(alice, replicate, synced_ago=None)
    replicate.script(200, body={"id": "x", "status": "processing"}, delay=0.3, path="/predictions/", times=100)
    code = """
        import json, time
        from providers.sync import jobs_sync
        started = time.time()
        result = jobs_sync()
        print(json.dumps({"ran": result.ran, "start": started, "end": time.time()}))
    """
    env = django_env(REPLICATE_API_BASE_URL=replicate.base_url, REPLICATE_API_TOKEN=replicate.token)
    passes = [json.loads(out) for out in race(code, 3, tmp_path, env=env)]
    ran = sorted((p for p in passes if p["ran"]), key=lambda p: p["start"])
    assert ran, passes
    for first, second in zip(ran, ran[1:], strict=False):
        assert second["start"] >= first["end"] - 0.05
    # Every pass that ran polled both jobs; the others polled nothing.
    assert len(replicate.requests_to("GET", "/predictions/")) == 2 * len(ran)


@pytest.mark.django_db(transaction=True)
def test_the_background_thread_syncs_without_a_request(
    alice: AbstractUser, replicate: FakeReplicate, settings: SettingsWrapper
) -> None:
    settings.SIMPLETUNER_SYNC_INTERVAL = 1
    settings.SIMPLETUNER_SYNC_STALE_SECONDS = 0
    job = prediction_job(alice, replicate, synced_ago=None)
    replicate.advance(job.external_id, "succeeded", predict_time=1)
    assert sync.start_background_sync() is True
    try:
        assert sync.start_background_sync() is False  # one thread per process
        wait_for_status(job.pk, JobStatus.COMPLETED, timeout=20)
    finally:
        sync.stop_background_sync()


def test_the_background_thread_can_be_turned_off(settings: SettingsWrapper) -> None:
    settings.SIMPLETUNER_BACKGROUND_SYNC = False
    assert sync.start_background_sync() is False


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("enabled", "expected"), [("true", "True"), ("false", "False")])
def test_the_served_process_starts_the_loop_from_the_asgi_module(enabled: str, expected: str) -> None:
    code = """
        import threading
        import cloudops.asgi
        print(any(t.name == "jobs-sync" for t in threading.enumerate()))
    """
    env = django_env(SIMPLETUNER_BACKGROUND_SYNC=enabled)
    (out,) = wait_all([spawn_django(code, env=env)])
    assert out.strip() == expected
