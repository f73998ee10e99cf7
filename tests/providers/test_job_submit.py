from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from audit.models import AuditEntry
from providers.config import provider_config_get
from providers.credentials import job_upload_secret
from providers.models import Job, JobStatus
from tests.conftest import client_for, grant
from tests.providers.helpers import QUICK, python_command, race, submit

pytestmark = pytest.mark.django_db

BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def test_a_local_job_is_submitted_and_started(alice_client: APIClient, alice: AbstractUser) -> None:
    response = submit(alice_client, {"provider": "local", "config": QUICK, "name": "demo"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "running"
    assert body["idempotent_hit"] is False
    assert body["warnings"] == []
    job = body["job"]
    assert job["id"] == body["job_id"]
    assert (job["owner"], job["provider"], job["hardware"], job["name"]) == ("alice", "local", "local", "demo")
    assert job["upload_progress"] == {"files": 0, "bytes": 0, "last_upload_at": None}
    assert job["output"]["bucket"] == job["id"]
    stored = Job.objects.get(pk=body["job_id"])
    assert (stored.owner, stored.status, stored.config) == (alice, JobStatus.RUNNING, QUICK)
    assert stored.started_at is not None and stored.external_id == str(stored.runner["pid"])
    events = list(
        AuditEntry.objects.filter(target_id=stored.pk).order_by("sequence").values_list("event_type", "details")
    )
    assert events[0] == ("job.submitted", {"provider": "local", "hardware": "local", "name": "demo"})
    assert events[1][0] == "job.status_changed"
    assert events[1][1]["from"] == "pending" and events[1][1]["to"] == "running"


def test_the_jobs_collection_accepts_submissions_too(alice_client: APIClient) -> None:
    response = submit(alice_client, path="/api/cloud/jobs")
    assert response.status_code == 201
    assert Job.objects.filter(pk=response.json()["job_id"]).exists()


def test_job_ids_are_valid_s3_bucket_names_and_tokens_are_unique(alice_client: APIClient) -> None:
    ids = [submit(alice_client).json()["job_id"] for _ in range(3)]
    for job_id in ids:
        assert BUCKET_NAME.match(job_id) and "--" not in job_id and not re.match(r"^\d+\.\d+\.\d+\.\d+$", job_id)
    tokens = set(Job.objects.values_list("upload_token", flat=True))
    assert len(tokens) == 3


def test_no_upload_credential_appears_in_the_response(alice_client: APIClient) -> None:
    response = submit(alice_client)
    job = Job.objects.get(pk=response.json()["job_id"])
    text = response.content.decode()
    assert job.upload_token not in text
    assert job_upload_secret(job) not in text
    listing = (
        alice_client.get("/api/cloud/jobs").content.decode()
        + alice_client.get(f"/api/cloud/jobs/{job.pk}").content.decode()
    )
    assert job.upload_token not in listing and job_upload_secret(job) not in listing


def test_submitting_needs_authentication(anon: APIClient) -> None:
    response = submit(anon)
    assert response.status_code == 401
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({}, "provider", "This field is required"),
        ({"provider": "azure"}, "provider", "unknown provider 'azure'"),
        ({"provider": 7}, "provider", "Must be a string"),
        ({"provider": "local", "config": "max_train_steps=1"}, "config", "Expected a dictionary"),
        ({"provider": "local", "dataloader_config": {"id": "x"}}, "dataloader_config", "Expected a list"),
        ({"provider": "local", "dataloader_config": ["x"]}, "dataloader_config", "Expected a dictionary"),
        ({"provider": "local", "priority": "high"}, "priority", "Unknown field"),
        ({"provider": "local", "hardware": "gpu-h100"}, "hardware", "'gpu-h100' is not offered by local"),
        ({"provider": "local", "name": "x" * 201}, "name", "no more than 200"),
        ({"provider": "replicate"}, "provider", "replicate is disabled"),
        ({"provider": "local", "config": {"hf_token": "hf_abc"}}, "config", "hf_token: credentials do not belong"),
        ({"provider": "local", "config": {"push": {"s3SecretKey": "x"}}}, "config", "push.s3SecretKey"),
        (
            {"provider": "local", "dataloader_config": [{"aws_access_key": "x"}]},
            "dataloader_config",
            "0.aws_access_key",
        ),
        ({"provider": "local", "config": {"max_train_steps": 0}}, "config", "max_train_steps: must be a number from 1"),
        ({"provider": "local", "config": {"step_seconds": "fast"}}, "config", "step_seconds: must be a number"),
        ({"provider": "local", "dataset": "missing.zip"}, "dataset", "no directory or .zip file named"),
        ({"provider": "local", "dataset": "../../etc"}, "dataset", "must stay inside"),
        ({"provider": "local", "dataset": "/etc/passwd"}, "dataset", "must be an http(s) URL or a path relative"),
    ],
)
def test_invalid_submissions_are_a_400_naming_field_and_reason(
    alice_client: APIClient, body: dict, field: str, reason: str
) -> None:
    response = submit(alice_client, body)
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"]
    assert reason in response.json()["detail"]
    assert not Job.objects.exists()


def test_config_keys_that_only_look_like_secrets_are_fine(alice_client: APIClient) -> None:
    config = {**QUICK, "tokenizer_max_length": 77, "t5_max_tokens": 256, "--hub_model_id": "me/lora"}
    assert submit(alice_client, {"provider": "local", "config": config}).status_code == 201


def test_bad_json_and_non_object_bodies_are_a_400(alice_client: APIClient) -> None:
    response = alice_client.post("/api/cloud/jobs/submit", data="{oops", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
    response = submit(alice_client, ["local"])  # type: ignore[arg-type]
    assert response.status_code == 400
    assert "Expected a dictionary" in response.json()["detail"]
    assert not Job.objects.exists()


def test_custom_commands_are_for_staff_only(alice_client: APIClient, staff_client: APIClient) -> None:
    body = {"provider": "local", "config": {"command": python_command("print('hi')")}}
    response = submit(alice_client, body)
    assert response.status_code == 403
    assert "config.command" in response.json()["detail"]
    assert not Job.objects.exists()
    assert submit(staff_client, body).status_code == 201


def test_staff_status_alone_does_not_run_commands(clerk: AbstractUser) -> None:
    body = {"provider": "local", "config": {"command": python_command("print('hi')")}}
    assert submit(client_for(clerk), body).status_code == 403
    assert not Job.objects.exists()
    # A command runs as the server's user: it takes staff who may reconfigure providers.
    assert submit(client_for(grant(clerk, "providers.change_providerconfig")), body).status_code == 201


def test_everyone_may_run_commands_when_the_operator_allows_it(
    alice_client: APIClient, settings: SettingsWrapper
) -> None:
    settings.SIMPLETUNER_LOCAL_COMMANDS = "all"
    assert submit(alice_client, {"provider": "local", "config": {"command": python_command("pass")}}).status_code == 201


def test_nobody_may_run_commands_when_the_operator_forbids_it(
    staff_client: APIClient, settings: SettingsWrapper
) -> None:
    settings.SIMPLETUNER_LOCAL_COMMANDS = "none"
    response = submit(staff_client, {"provider": "local", "config": {"command": python_command("pass")}})
    assert response.status_code == 403


@pytest.mark.parametrize("command", [[], "python -c pass", [""], ["python", 3]])
def test_a_command_must_be_an_argv(staff_client: APIClient, command: object) -> None:
    response = submit(staff_client, {"provider": "local", "config": {"command": command}})
    assert response.status_code == 400
    assert "command: must be a non-empty list of non-empty strings" in response.json()["detail"]


def test_a_dataset_under_the_datasets_directory_is_accepted(
    alice_client: APIClient, settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.SIMPLETUNER_DATASETS_DIR = tmp_path / "datasets"
    (tmp_path / "datasets" / "cats").mkdir(parents=True)
    response = submit(alice_client, {"provider": "local", "config": QUICK, "dataset": "cats"})
    assert response.status_code == 201
    assert response.json()["job"]["dataset"] == "cats"


# --- Idempotency -------------------------------------------------------------------------------


def test_the_same_idempotency_key_returns_the_same_job(alice_client: APIClient) -> None:
    first = submit(alice_client, **{"Idempotency-Key": "retry-me-1"})
    second = submit(alice_client, **{"Idempotency-Key": "retry-me-1"})
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["idempotent_hit"] is True
    assert second.json()["job_id"] == first.json()["job_id"]
    assert Job.objects.count() == 1
    assert AuditEntry.objects.filter(event_type="job.submitted").count() == 1


def test_the_key_may_come_in_the_body(alice_client: APIClient) -> None:
    body = {"provider": "local", "config": QUICK, "idempotency_key": "body-key"}
    assert submit(alice_client, body).status_code == 201
    again = submit(alice_client, body)
    assert again.status_code == 200 and again.json()["idempotent_hit"] is True
    assert Job.objects.count() == 1


def test_the_same_key_with_a_different_body_is_a_409(alice_client: APIClient) -> None:
    submit(alice_client, **{"Idempotency-Key": "k-409"})
    response = submit(
        alice_client, {"provider": "local", "config": {**QUICK, "max_train_steps": 2}}, **{"Idempotency-Key": "k-409"}
    )
    assert response.status_code == 409
    assert "different request body" in response.json()["detail"]
    assert Job.objects.count() == 1


def test_keys_are_scoped_per_user(alice_client: APIClient, bob_client: APIClient) -> None:
    a = submit(alice_client, **{"Idempotency-Key": "shared"})
    b = submit(bob_client, **{"Idempotency-Key": "shared"})
    assert a.status_code == b.status_code == 201
    assert a.json()["job_id"] != b.json()["job_id"]


def test_a_header_and_body_key_that_disagree_are_a_400(alice_client: APIClient) -> None:
    body = {"provider": "local", "config": QUICK, "idempotency_key": "one"}
    response = submit(alice_client, body, **{"Idempotency-Key": "two"})
    assert response.status_code == 400
    assert "idempotency_key" in response.json()["errors"]
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_create_one_job(alice: AbstractUser, tmp_path: Path) -> None:
    code = f"""
        from django.contrib.auth import get_user_model
        from providers.submit import job_submit
        owner = get_user_model().objects.get(pk={alice.pk})
        result = job_submit(owner=owner, provider="local", config={QUICK!r}, idempotency_key="race")
        print(result.job.pk, result.created)
    """
    outputs = [line.split() for line in race(code, 3, tmp_path)]
    assert len({job_id for job_id, _ in outputs}) == 1
    assert sorted(created for _, created in outputs) == ["False", "False", "True"]
    assert Job.objects.count() == 1


# --- Cost limits -------------------------------------------------------------------------------


def spent(owner: AbstractUser, amount: str) -> None:
    Job.objects.create(
        owner=owner, provider="local", status=JobStatus.COMPLETED, completed_at=timezone.now(), cost_usd=Decimal(amount)
    )


def limit(action: str, amount: str = "10") -> None:
    config = provider_config_get("local")
    config.cost_limit_enabled, config.cost_limit_amount, config.cost_limit_action = True, Decimal(amount), action
    config.save()


def test_a_warn_limit_lets_the_job_through_with_a_warning(alice_client: APIClient, alice: AbstractUser) -> None:
    spent(alice, "12.50")
    limit("warn")
    response = submit(alice_client)
    assert response.status_code == 201
    assert response.json()["warnings"] == ["Cost limit exceeded for local: $12.50 of $10.00 (monthly)."]


def test_a_block_limit_refuses_the_job(alice_client: APIClient, bob: AbstractUser) -> None:
    spent(bob, "10.00")
    limit("block")
    response = submit(alice_client)
    assert response.status_code == 402
    assert response.json()["detail"].startswith("Cost limit reached for local: $10.00 of $10.00 (monthly).")
    assert Job.objects.count() == 1  # only bob's earlier job


def test_approaching_the_limit_warns_before_it_blocks(alice_client: APIClient, alice: AbstractUser) -> None:
    spent(alice, "8.50")
    limit("block")
    response = submit(alice_client)
    assert response.status_code == 201
    assert response.json()["warnings"] == ["local has used 85% of its cost limit: $8.50 of $10.00 (monthly)."]


def test_spend_from_earlier_periods_does_not_count(alice_client: APIClient, alice: AbstractUser) -> None:
    Job.objects.create(
        owner=alice,
        provider="local",
        status=JobStatus.COMPLETED,
        cost_usd=Decimal("99"),
        completed_at=timezone.now() - timedelta(days=40),
    )
    limit("block")
    assert submit(alice_client).status_code == 201


def test_the_response_serialises_cleanly(alice_client: APIClient) -> None:
    body = submit(alice_client).json()
    assert json.loads(json.dumps(body)) == body
    assert isinstance(body["job"]["cost_usd"], float)
