"""Two leads approve the same held job at the same moment through two server processes on
one database: exactly one 200 and one 409, and the job reaches its provider once (the
Replicate-compatible loopback server counts the predictions it was asked to create)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import AbstractUser

from governance.models import ApprovalRequest, ApprovalRule
from providers.config import provider_config_get
from providers.models import Job, JobStatus
from tests.conftest import client_for
from tests.events.conftest import server_env
from tests.fakes.replicate import FakeReplicate
from tests.governance.conftest import in_group
from tests.server.live import free_port, running

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROUNDS = 3
CONFIG = {"--model_type": "lora", "max_train_steps": 10}


@pytest.fixture
def fake_replicate() -> Iterator[FakeReplicate]:
    fake = FakeReplicate().start()
    yield fake
    fake.stop()


@pytest.fixture
def two_servers(jobs_dir: Path, tmp_path: Path, fake_replicate: FakeReplicate) -> Iterator[tuple[str, str]]:
    config = provider_config_get("replicate")
    config.enabled = True
    config.save()
    extra = {
        "REPLICATE_API_BASE_URL": fake_replicate.base_url,
        "REPLICATE_API_TOKEN": fake_replicate.token,
        "REPLICATE_WEBHOOK_SECRET": fake_replicate.webhook_secret,
        "SIMPLETUNER_PUBLIC_URL": "https://st.example.com",
    }
    port_a, port_b = free_port(), free_port()
    serve = [sys.executable, "manage.py", "serve", "--port"]
    with (
        running(
            [*serve, str(port_a)], server_env(jobs_dir, PORT=str(port_a), **extra), port_a, tmp_path / "a.log"
        ) as a,
        running(
            [*serve, str(port_b)], server_env(jobs_dir, PORT=str(port_b), **extra), port_b, tmp_path / "b.log"
        ) as b,
    ):
        yield a, b


def _predictions_for(fake: FakeReplicate, job_id: str) -> int:
    """How many predictions the provider was asked to create for the job (its bucket is in the input)."""
    return sum(r.json()["input"]["s3_bucket"] == job_id for r in fake.requests_to("POST", "/predictions"))


def _approve_at_once(calls: list[tuple[str, str]]) -> list[int]:
    """POST each (url, api key) from its own thread, released together."""
    barrier = threading.Barrier(len(calls))
    statuses: list[int] = []

    def approve(url: str, key: str) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            barrier.wait(timeout=30)
            statuses.append(client.post(url, json={"reason": "fine"}).status_code)

    threads = [threading.Thread(target=approve, args=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    return statuses


def test_two_processes_approving_at_once_submit_the_job_once(
    two_servers: tuple[str, str], fake_replicate: FakeReplicate, alice: AbstractUser, make_user
) -> None:  # type: ignore[no-untyped-def]
    a, b = two_servers
    ApprovalRule.objects.create(name="every replicate job", condition="provider", threshold="replicate")
    alice_key = client_for(alice).raw_key  # type: ignore[attr-defined]
    keys = [client_for(in_group(make_user(f"lead{i}"), "lead")).raw_key for i in range(2)]  # type: ignore[attr-defined]
    for _ in range(ROUNDS):
        submitted = httpx.post(
            f"{a}/api/cloud/jobs/submit",
            json={"provider": "replicate", "config": CONFIG},
            headers={"Authorization": f"Bearer {alice_key}"},
            timeout=60,
        )
        assert submitted.status_code in (200, 201, 202), submitted.text
        job_id = submitted.json()["job_id"]
        assert Job.objects.get(pk=job_id).status == JobStatus.PENDING_APPROVAL
        assert _predictions_for(fake_replicate, job_id) == 0  # held: never sent before approval
        request_id = ApprovalRequest.objects.get(job_id=job_id).pk
        path = f"/api/approvals/requests/{request_id}/approve"
        statuses = _approve_at_once([(a + path, keys[0]), (b + path, keys[1])])
        assert sorted(statuses) == [200, 409]
        assert _predictions_for(fake_replicate, job_id) == 1
        job = Job.objects.get(pk=job_id)
        assert job.external_id in fake_replicate.predictions
        assert job.status not in (JobStatus.PENDING_APPROVAL, JobStatus.FAILED)
        assert ApprovalRequest.objects.get(pk=request_id).status == "approved"
    assert len(fake_replicate.requests_to("POST", "/predictions")) == ROUNDS
