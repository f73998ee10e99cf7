"""Replicate predictions and SimpleTuner trainer events applied to jobs, forward only."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from audit.models import AuditEntry
from providers.credentials import local_webhook_secret
from providers.models import Job
from tests.fakes.replicate import FakeReplicate
from tests.webhooks.deliveries import prediction

pytestmark = pytest.mark.django_db


@pytest.fixture
def send(post_webhook: Callable[..., Any], replicate: FakeReplicate) -> Callable[..., Any]:
    def send_prediction(status: str, **fields: Any) -> Any:
        response = post_webhook("replicate", prediction(status, **fields), secret=replicate.webhook_secret)
        assert response.status_code == 200, response.content
        return response.json()

    return send_prediction


def status_changes(job: Job) -> list[tuple[str, str]]:
    entries = AuditEntry.objects.filter(event_type="job.status_changed", target_id=job.pk).order_by("sequence")
    return [(e.details["from"], e.details["to"]) for e in entries]


def test_a_replicate_run_is_recorded_with_cost_logs_output_and_times(
    send: Callable[..., Any], replicate_job: Job
) -> None:
    assert send("starting")["updates"]["status"] == "queued"
    body = send("processing", logs="step 1\n", started_at="2026-11-28T10:00:05.000000Z")
    assert body["status"] == "received" and body["job_id"] == replicate_job.pk
    assert body["updates"]["status"] == "running"
    assert body["updates"]["started_at"] == "2026-11-28T10:00:05+00:00"
    final = send(
        "succeeded",
        logs="step 1\nstep 2\ndone\n",
        output=["https://replicate.delivery/out/model.safetensors"],
        metrics={"predict_time": 3600.0},
        started_at="2026-11-28T10:00:05.000000Z",
        completed_at="2026-11-28T11:00:05.000000Z",
    )
    assert final["updates"]["status"] == "completed"
    replicate_job.refresh_from_db()
    assert replicate_job.status == "completed"
    assert replicate_job.cost_usd == Decimal("3.510000")  # gpu-l40s at $3.51/hour, one hour
    assert replicate_job.run_seconds == 3600.0
    assert replicate_job.logs.endswith("done\n")
    assert replicate_job.output_url == "https://replicate.delivery/out/model.safetensors"
    assert replicate_job.completed_at.isoformat() == "2026-11-28T11:00:05+00:00"
    assert status_changes(replicate_job) == [("pending", "queued"), ("queued", "running"), ("running", "completed")]
    assert all(
        e.details["source"] == "webhook:replicate" for e in AuditEntry.objects.filter(event_type="job.status_changed")
    )


def test_late_and_out_of_order_replicate_events_never_move_a_job_backwards(
    send: Callable[..., Any], replicate_job: Job
) -> None:
    send("succeeded", metrics={"predict_time": 10.0}, logs="final logs")
    late = send("processing", logs="stale logs")
    assert late["updates"] == {}
    send("starting")
    send("failed", error="too late")
    replicate_job.refresh_from_db()
    assert replicate_job.status == "completed"
    assert replicate_job.logs == "final logs" and replicate_job.error == ""
    assert status_changes(replicate_job) == [("pending", "completed")]


def test_a_failed_prediction_records_its_error(send: Callable[..., Any], replicate_job: Job) -> None:
    send("processing")
    body = send("failed", error="CUDA out of memory", metrics={"predict_time": 12.5})
    assert body["updates"]["status"] == "failed"
    replicate_job.refresh_from_db()
    assert replicate_job.error == "CUDA out of memory"
    assert replicate_job.cost_usd == Decimal("0.012188")  # 12.5 s x 3.51/3600


def test_logs_from_webhooks_are_capped(send: Callable[..., Any], replicate_job: Job, settings: Any) -> None:
    settings.SIMPLETUNER_JOB_LOG_MAX_BYTES = 2048
    send("processing", logs="x" * 5000 + "the end")
    replicate_job.refresh_from_db()
    assert len(replicate_job.logs) == 2048 and replicate_job.logs.endswith("the end")


def test_a_prediction_of_an_unknown_job_is_ignored(
    post_webhook: Callable[..., Any], replicate: FakeReplicate, replicate_job: Job
) -> None:
    response = post_webhook(
        "replicate", prediction("processing", id="unknownprediction"), secret=replicate.webhook_secret
    )
    assert response.status_code == 200
    assert response.json() == {"status": "ignored"}
    replicate_job.refresh_from_db()
    assert replicate_job.status == "pending"


def test_a_signed_local_event_cannot_touch_another_providers_job(
    post_webhook: Callable[..., Any], replicate_job: Job
) -> None:
    event = {"type": "training.status", "data": {"status": "failed"}, "job_id": replicate_job.pk}
    assert post_webhook("local", event).json() == {"status": "ignored"}


# --- SimpleTuner trainer events ------------------------------------------------------------------


def test_trainer_events_drive_status_and_progress(post_webhook: Callable[..., Any], local_job: Job) -> None:
    def event(payload: dict[str, Any]) -> dict[str, Any]:
        response = post_webhook("local", {"job_id": local_job.pk, **payload})
        assert response.status_code == 200, response.content
        return response.json()["updates"]

    assert event({"type": "training.status", "data": {"status": "running"}})["status"] == "running"
    stage = {"key": "training", "status": "running", "progress": {"label": "Training", "current": 3, "total": 10}}
    assert event({"type": "lifecycle.stage", "stage": stage})["progress"] == {
        "label": "Training",
        "current": 3,
        "total": 10,
        "percent": 30.0,
        "stage": "training",
    }
    updates = event({"type": "training.progress", "data": {"step": 5, "total_steps": 10, "eta": 42, "loss": 0.12}})
    assert updates["progress"]["current"] == 5 and updates["progress"]["eta_seconds"] == 42
    # A late progress event (step 4 after step 5) changes nothing.
    assert event({"type": "training.progress", "data": {"step": 4, "total_steps": 10}}) == {}
    checkpoint = {"path": "checkpoint-10/model.safetensors", "is_final": True}
    assert (
        event({"type": "training.checkpoint", "checkpoint": checkpoint})["progress"]["checkpoint"] == checkpoint["path"]
    )
    done = event({"type": "training.status", "data": {"status": "completed"}, "progress": {"current": 10, "total": 10}})
    assert done["status"] == "completed"
    local_job.refresh_from_db()
    assert local_job.progress["current"] == 10 and local_job.progress["checkpoint_final"] is True
    assert event({"type": "training.status", "data": {"status": "running"}}) == {}
    assert event({"type": "notification", "message": "hello"}) == {}


def test_a_failed_training_status_records_the_message(post_webhook: Callable[..., Any], local_job: Job) -> None:
    post_webhook(
        "local",
        {"job_id": local_job.pk, "type": "training.status", "data": {"status": "failed"}, "message": "NaN loss"},
    )
    local_job.refresh_from_db()
    assert local_job.status == "failed" and local_job.error == "NaN loss"


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "training.status", "data": "running"},
        {"type": "training.progress", "data": {"step": "five", "total_steps": None}},
        {"type": "lifecycle.stage", "stage": ["x"]},
        {"type": "training.checkpoint", "checkpoint": {"path": 7}},
    ],
)
def test_fields_of_the_wrong_type_are_ignored_not_a_server_error(
    post_webhook: Callable[..., Any], local_job: Job, payload: dict[str, Any]
) -> None:
    response = post_webhook("local", {"job_id": local_job.pk, **payload})
    assert response.status_code == 200
    local_job.refresh_from_db()
    assert local_job.status == "queued"


def test_prediction_fields_of_the_wrong_type_are_ignored_not_a_server_error(
    post_webhook: Callable[..., Any], replicate: FakeReplicate, replicate_job: Job
) -> None:
    payload = {"id": replicate_job.external_id, "status": ["processing"], "metrics": "fast", "logs": 3}
    response = post_webhook("replicate", payload, secret=replicate.webhook_secret)
    assert response.status_code == 200
    replicate_job.refresh_from_db()
    assert replicate_job.status == "pending"


# --- Malformed bodies ----------------------------------------------------------------------------


def test_invalid_json_is_400(post_webhook: Callable[..., Any], replicate: FakeReplicate) -> None:
    response = post_webhook("replicate", b'{"status": "processing",', secret=replicate.webhook_secret)
    assert response.status_code == 400
    assert "Invalid JSON" in response.json()["detail"]


def test_a_json_body_that_is_not_an_object_is_400(post_webhook: Callable[..., Any], replicate: FakeReplicate) -> None:
    response = post_webhook("replicate", b'["processing"]', secret=replicate.webhook_secret)
    assert response.status_code == 400
    assert "JSON object" in response.json()["detail"]


def test_a_local_body_that_names_no_job_cannot_be_verified(post_webhook: Callable[..., Any], local_job: Job) -> None:
    # A local job's secret is the one of the job its delivery names: unreadable, no secret.
    response = post_webhook("local", b'{"type": "training.status",', secret=local_webhook_secret(local_job.pk))
    assert response.status_code == 401
    assert "must name its job" in response.json()["detail"]


def test_a_body_over_the_cap_is_413_and_audited(
    post_webhook: Callable[..., Any], local_job: Job, settings: Any
) -> None:
    settings.SIMPLETUNER_WEBHOOK_MAX_BYTES = 2048
    big = {"job_id": local_job.pk, "type": "training.status", "data": {"status": "running"}, "pad": "x" * 3000}
    response = post_webhook("local", big)
    assert response.status_code == 413
    assert "2048" in response.json()["detail"]
    assert AuditEntry.objects.get(event_type="webhook_rejected").details["reason"] == "too_large"
    local_job.refresh_from_db()
    assert local_job.status == "queued"
