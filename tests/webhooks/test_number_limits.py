"""Signed deliveries with numbers no database stores are refused with a 400 (never a 500,
which senders retry forever), and nothing about the job changes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from providers.base import RemoteState
from providers.models import Job, JobStatus
from providers.replicate import prediction_state
from providers.webhooks.payloads import parse_payload
from tests.fakes.replicate import FakeReplicate
from tests.webhooks.deliveries import prediction

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("number", ["1e999", "-1e999", "9" * 4000, "9" * 5000, "NaN", "Infinity"])
def test_a_signed_prediction_with_an_unstorable_number_is_a_400(
    post_webhook: Callable[..., Any], replicate: FakeReplicate, replicate_job: Job, number: str
) -> None:
    body = json.dumps(prediction("succeeded", metrics={"predict_time": 0})).replace(
        '"predict_time": 0', f'"predict_time": {number}'
    )
    response = post_webhook("replicate", body.encode(), secret=replicate.webhook_secret)
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith("Invalid JSON body: ")
    replicate_job.refresh_from_db()
    assert replicate_job.status == JobStatus.PENDING and replicate_job.cost_usd == 0


def test_a_local_trainer_event_with_an_unstorable_progress_number_is_a_400(
    post_webhook: Callable[..., Any], local_job: Job
) -> None:
    body = (
        b'{"type": "training.progress", "job_id": "%s", "data": {"step": 1e999, "total": 10}}' % local_job.pk.encode()
    )
    response = post_webhook("local", body)
    assert response.status_code == 400
    assert "data.step: numbers must be finite" in response.json()["detail"]


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 10**400, -1.0, 10**10])
def test_a_run_time_no_one_could_have_run_is_ignored(value: float) -> None:
    # Payloads read from Replicate's API (the sync) do not pass the request boundary.
    assert prediction_state({"status": "succeeded", "metrics": {"predict_time": value}}).run_seconds is None


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 10**400, -(10**400)])
def test_progress_figures_no_database_stores_are_dropped(value: float) -> None:
    payload = parse_payload({"type": "training.progress", "job_id": "job-x", "data": {"step": value, "total": 10}})
    assert isinstance(payload.remote, RemoteState)
    assert "current" not in payload.remote.progress and payload.remote.progress["total"] == 10
