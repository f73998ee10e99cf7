"""Replicate jobs end to end against the Replicate-compatible loopback server."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from audit.models import AuditEntry
from cloudops.structured_logging import JsonFormatter
from providers.config import provider_config_get
from providers.credentials import job_upload_bearer, job_upload_secret
from providers.models import CircuitBreaker, CircuitState, Job, JobStatus
from providers.sync import jobs_sync
from tests.fakes.replicate import FakeReplicate
from tests.providers.helpers import submit

pytestmark = pytest.mark.django_db

CONFIG = {"--model_type": "lora", "max_train_steps": 1000, "hub_model_id": "me/my-lora"}


@pytest.fixture
def public(settings: SettingsWrapper) -> str:
    settings.SIMPLETUNER_PUBLIC_URL = "https://st.example.com"
    return "https://st.example.com"


def submit_replicate(client: APIClient, **extra: object):  # type: ignore[no-untyped-def]
    return submit(client, {"provider": "replicate", "config": CONFIG, **extra})


def later() -> datetime:
    """A moment after every job's last update is stale (the sync's clock, moved forward)."""
    return timezone.now() + timedelta(hours=1)


def test_a_job_becomes_a_prediction_with_webhook_and_upload_credentials(
    alice_client: APIClient, replicate: FakeReplicate, public: str
) -> None:
    response = submit_replicate(alice_client, hardware="gpu-h100-2x")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["warnings"] == []
    job = Job.objects.get(pk=body["job_id"])
    assert job.external_id in replicate.predictions and job.hardware == "gpu-h100-2x"
    sent = replicate.requests_to("POST", "/predictions")[0].json()
    assert sent["version"] == replicate.version
    assert sent["webhook"] == "https://st.example.com/api/webhooks/replicate"
    assert sent["webhook_events_filter"] == ["start", "output", "logs", "completed"]
    inputs = sent["input"]
    assert json.loads(inputs["config_json"]) == CONFIG
    assert json.loads(inputs["dataloader_json"]) == []
    assert (inputs["hub_model_id"], inputs["max_train_steps"]) == ("me/my-lora", 1000)
    assert inputs["s3_endpoint_url"] == "https://st.example.com/api/cloud/storage"
    assert (inputs["s3_bucket"], inputs["s3_access_key"]) == (job.pk, job.upload_token)
    assert inputs["s3_secret_key"] == job_upload_secret(job)
    assert inputs["s3_upload_token"] == job_upload_bearer(job.upload_token)
    assert job_upload_secret(job) not in inputs["config_json"]
    assert job_upload_secret(job) not in response.content.decode()


def test_the_hf_token_goes_only_into_its_secret_input(
    alice_client: APIClient, replicate: FakeReplicate, public: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    submit_replicate(alice_client)
    inputs = replicate.requests_to("POST", "/predictions")[0].json()["input"]
    assert inputs["hf_token"] == "hf_secret_value"
    assert "hf_secret_value" not in inputs["config_json"]


def test_version_override_skips_the_model_lookup(
    alice_client: APIClient, replicate: FakeReplicate, public: str
) -> None:
    config = provider_config_get("replicate")
    config.version_override = replicate.version
    config.save()
    assert submit_replicate(alice_client).status_code == 201
    assert replicate.requests_to("GET", "/models") == []


def test_without_a_public_url_the_job_runs_but_the_caller_is_warned(
    alice_client: APIClient, replicate: FakeReplicate
) -> None:
    response = submit_replicate(alice_client)
    assert response.status_code == 201
    warnings = response.json()["warnings"]
    assert any("cannot upload its outputs back" in w for w in warnings)
    assert any("Replicate cannot deliver webhooks" in w for w in warnings)
    sent = replicate.requests_to("POST", "/predictions")[0].json()
    assert "webhook" not in sent and "s3_secret_key" not in sent["input"]


def test_a_dataset_directory_is_zipped_and_uploaded_first(
    alice_client: APIClient, replicate: FakeReplicate, public: str, settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.SIMPLETUNER_DATASETS_DIR = tmp_path / "datasets"
    cats = tmp_path / "datasets" / "cats"
    cats.mkdir(parents=True)
    (cats / "cat1.png").write_bytes(b"\x89PNG one")
    (cats / "cat1.txt").write_text("a photo of a cat")
    response = submit_replicate(alice_client, dataset="cats")
    assert response.status_code == 201
    (upload,) = replicate.files.values()
    assert sorted(zipfile.ZipFile(io.BytesIO(upload)).namelist()) == ["cat1.png", "cat1.txt"]
    images = replicate.requests_to("POST", "/predictions")[0].json()["input"]["images"]
    assert images.startswith(replicate.base_url + "/files/")
    moves = [e.details["to"] for e in AuditEntry.objects.filter(event_type="job.status_changed").order_by("sequence")]
    assert moves == ["uploading", "queued"]


def test_a_dataset_url_is_passed_through(alice_client: APIClient, replicate: FakeReplicate, public: str) -> None:
    submit_replicate(alice_client, dataset="https://data.example.com/cats.zip")
    assert replicate.files == {}
    assert (
        replicate.requests_to("POST", "/predictions")[0].json()["input"]["images"]
        == "https://data.example.com/cats.zip"
    )


def test_input_the_provider_rejects_fails_the_job_with_a_400(
    alice_client: APIClient, replicate: FakeReplicate, public: str
) -> None:
    config = provider_config_get("replicate")
    config.version_override = "0" * 64
    config.save()
    response = submit_replicate(alice_client)
    assert response.status_code == 400
    body = response.json()
    assert body["provider"] == "replicate" and body["provider_status"] == 422
    assert "version does not exist" in body["detail"]
    job = Job.objects.get(pk=body["job_id"])
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("Submission to replicate failed: replicate rejected the request (422)")
    assert body["job"]["status"] == "failed"


def test_a_provider_outage_fails_the_job_with_a_502(
    alice_client: APIClient, replicate: FakeReplicate, public: str
) -> None:
    replicate.script(503, path="/predictions")
    response = submit_replicate(alice_client)
    assert response.status_code == 502
    assert response.json()["detail"] == "replicate answered 503"
    assert Job.objects.get(pk=response.json()["job_id"]).status == JobStatus.FAILED


def test_an_open_circuit_answers_503_with_retry_after(
    alice_client: APIClient, replicate: FakeReplicate, public: str
) -> None:
    CircuitBreaker.objects.create(provider="replicate", state=CircuitState.OPEN, opened_at=timezone.now())
    response = submit_replicate(alice_client)
    assert response.status_code == 503
    assert 55 <= int(response["Retry-After"]) <= 60
    assert "circuit breaker open" in response.json()["detail"]
    assert replicate.requests == []


def test_a_missing_token_is_a_503_naming_the_variable(
    alice_client: APIClient, replicate: FakeReplicate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REPLICATE_API_TOKEN")
    response = submit_replicate(alice_client)
    assert response.status_code == 503
    assert "REPLICATE_API_TOKEN is not configured" in response.json()["detail"]


def test_the_sync_follows_the_prediction_to_completion_and_prices_it(
    alice_client: APIClient, replicate: FakeReplicate, public: str
) -> None:
    job_id = submit_replicate(alice_client, hardware="gpu-h100").json()["job_id"]
    job = Job.objects.get(pk=job_id)
    replicate.advance(job.external_id, "processing", logs="step 10/1000")
    jobs_sync(now=later())
    job.refresh_from_db()
    assert (job.status, job.logs) == (JobStatus.RUNNING, "step 10/1000")
    assert job.started_at is not None
    replicate.advance(
        job.external_id,
        "succeeded",
        logs="done",
        output=["https://replicate.delivery/x/lora.safetensors"],
        predict_time=3600,
    )
    result = jobs_sync(now=later())
    job.refresh_from_db()
    assert result.changed == {"completed": 1}
    assert job.status == JobStatus.COMPLETED
    assert job.run_seconds == 3600
    assert job.cost_usd == Decimal("5.490000")  # one hour of one H100 at $5.49/h
    assert job.output_url == "https://replicate.delivery/x/lora.safetensors"


def test_cost_uses_the_jobs_own_hardware_and_the_operators_prices(
    alice_client: APIClient, replicate: FakeReplicate, public: str
) -> None:
    config = provider_config_get("replicate")
    config.hardware = {"gpu-l40s-4x": {"price_per_second": 0.01}}
    config.save()
    job = Job.objects.get(pk=submit_replicate(alice_client, hardware="gpu-l40s-4x").json()["job_id"])
    replicate.advance(job.external_id, "succeeded", predict_time=100)
    jobs_sync(now=later())
    assert Job.objects.get(pk=job.pk).cost_usd == Decimal("1.000000")


def test_a_failed_prediction_fails_the_job_with_the_providers_error(
    alice_client: APIClient, replicate: FakeReplicate, public: str
) -> None:
    job = Job.objects.get(pk=submit_replicate(alice_client).json()["job_id"])
    replicate.advance(job.external_id, "failed", error="CUDA out of memory", predict_time=60)
    jobs_sync(now=later())
    job.refresh_from_db()
    assert (job.status, job.error) == (JobStatus.FAILED, "CUDA out of memory")
    assert job.cost_usd == Decimal("0.058500")


def test_cancel_cancels_the_prediction(alice_client: APIClient, replicate: FakeReplicate, public: str) -> None:
    job = Job.objects.get(pk=submit_replicate(alice_client).json()["job_id"])
    response = alice_client.post(f"/api/cloud/jobs/{job.pk}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert replicate.predictions[job.external_id]["status"] == "canceled"
    assert len(replicate.requests_to("POST", f"/predictions/{job.external_id}/cancel")) == 1
    assert AuditEntry.objects.filter(event_type="job.cancelled", target_id=job.pk).count() == 1


def test_cancelling_a_prediction_that_already_finished_is_a_409(
    alice_client: APIClient, replicate: FakeReplicate, public: str
) -> None:
    job = Job.objects.get(pk=submit_replicate(alice_client).json()["job_id"])
    replicate.advance(job.external_id, "succeeded", predict_time=10)
    response = alice_client.post(f"/api/cloud/jobs/{job.pk}/cancel")
    assert response.status_code == 409
    assert response.json()["detail"] == f"Job {job.pk} already completed at replicate."
    assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED


def test_cancel_during_an_outage_is_a_502_and_changes_nothing(
    alice_client: APIClient, replicate: FakeReplicate, public: str
) -> None:
    job = Job.objects.get(pk=submit_replicate(alice_client).json()["job_id"])
    replicate.script(500, path="/predictions/", times=10)
    response = alice_client.post(f"/api/cloud/jobs/{job.pk}/cancel")
    assert response.status_code == 502
    assert response.json()["job_id"] == job.pk
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    # The failed cancel gave its claim back: once Replicate answers, a retry works at once.
    assert Job.objects.get(pk=job.pk).cancel_requested_at is None
    replicate.clear_script()
    assert alice_client.post(f"/api/cloud/jobs/{job.pk}/cancel").status_code == 200


def test_logs_come_fresh_from_the_provider_and_fall_back_to_the_stored_copy(
    alice_client: APIClient, replicate: FakeReplicate, public: str
) -> None:
    job = Job.objects.get(pk=submit_replicate(alice_client).json()["job_id"])
    replicate.advance(job.external_id, "processing", logs="step 1\nstep 2\n")
    logs = alice_client.get(f"/api/cloud/jobs/{job.pk}/logs").json()
    assert (logs["logs"], logs["source"], logs["truncated"]) == ("step 1\nstep 2\n", "provider", False)
    replicate.script(503, times=10)
    logs = alice_client.get(f"/api/cloud/jobs/{job.pk}/logs").json()
    assert (logs["logs"], logs["source"]) == ("step 1\nstep 2\n", "stored")


def test_reading_a_job_never_calls_the_provider(alice_client: APIClient, replicate: FakeReplicate, public: str) -> None:
    job_id = submit_replicate(alice_client).json()["job_id"]
    seen = len(replicate.requests)
    alice_client.get(f"/api/cloud/jobs/{job_id}")
    alice_client.get("/api/cloud/jobs")
    assert len(replicate.requests) == seen


def test_no_token_or_upload_credential_reaches_the_logs(
    alice_client: APIClient, replicate: FakeReplicate, public: str, caplog: pytest.LogCaptureFixture
) -> None:
    formatter = JsonFormatter()
    caplog.set_level(logging.DEBUG)
    job_id = submit_replicate(alice_client).json()["job_id"]
    job = Job.objects.get(pk=job_id)
    replicate.advance(job.external_id, "failed", error="boom", predict_time=5)
    jobs_sync(now=later())
    alice_client.post(f"/api/cloud/jobs/{job_id}/cancel")
    lines = "\n".join(formatter.format(record) for record in caplog.records)
    assert "job status changed" in lines and replicate.base_url in lines  # the calls were logged
    for secret in (replicate.token, job.upload_token, job_upload_secret(job), job_upload_bearer(job.upload_token)):
        assert secret not in lines
