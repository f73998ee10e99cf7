"""The Replicate client against a Replicate-compatible server on loopback."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper
from standardwebhooks import Webhook

from providers.config import provider_config_get
from providers.errors import (
    CircuitOpenError,
    ProviderAuthError,
    ProviderConfigError,
    ProviderInputError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from providers.http import RetryPolicy
from providers.models import CircuitBreaker, CircuitState, ProviderConfig
from providers.replicate import ReplicateProvider
from tests.fakes.http import LoopbackServer
from tests.fakes.replicate import FakeReplicate

pytestmark = pytest.mark.django_db


@pytest.fixture
def config(replicate: FakeReplicate) -> ProviderConfig:
    return provider_config_get("replicate")


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def client(slept: list[float]) -> ReplicateProvider:
    return ReplicateProvider(
        policy=RetryPolicy(retries=3, backoff=0.01, backoff_max=0.02, retry_after_max=30, sleep=slept.append)
    )


def test_the_account_check_sends_the_bearer_token(
    client: ReplicateProvider, config: ProviderConfig, replicate: FakeReplicate
) -> None:
    assert client.account(config)["username"] == "simpletuner-ops"
    assert replicate.requests[0].headers["Authorization"] == f"Bearer {replicate.token}"


def test_a_bad_token_is_an_auth_error(
    client: ReplicateProvider, config: ProviderConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_wrong")
    with pytest.raises(ProviderAuthError) as caught:
        client.account(config)
    assert caught.value.status_code == 401
    assert caught.value.detail["detail"] == "You did not pass a valid authentication token"
    assert "r8_wrong" not in caught.value.message


def test_a_missing_token_is_a_configuration_error(
    client: ReplicateProvider, config: ProviderConfig, monkeypatch: pytest.MonkeyPatch, replicate: FakeReplicate
) -> None:
    monkeypatch.delenv("REPLICATE_API_TOKEN")
    with pytest.raises(ProviderConfigError, match="REPLICATE_API_TOKEN is not configured"):
        client.account(config)
    assert replicate.requests == []


def test_a_rotated_token_applies_to_the_next_call(
    client: ReplicateProvider, config: ProviderConfig, monkeypatch: pytest.MonkeyPatch, replicate: FakeReplicate
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_old")
    with pytest.raises(ProviderAuthError):
        client.account(config)
    monkeypatch.setenv("REPLICATE_API_TOKEN", replicate.token)
    assert client.account(config)["type"] == "user"


def test_model_versions_and_the_latest_version(
    client: ReplicateProvider, config: ProviderConfig, replicate: FakeReplicate
) -> None:
    versions = client.model_versions(config, "simpletuner/advanced-trainer")
    assert [v["id"] for v in versions] == [replicate.version]
    assert client.latest_version(config, "simpletuner/advanced-trainer") == replicate.version
    with pytest.raises(ProviderInputError) as caught:
        client.latest_version(config, "nobody/nothing")
    assert caught.value.status_code == 404


def test_a_dataset_file_is_uploaded_as_multipart(
    client: ReplicateProvider, config: ProviderConfig, replicate: FakeReplicate, tmp_path: Path
) -> None:
    archive = tmp_path / "dataset.zip"
    archive.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 100)
    uploaded = client.upload_file(config, archive)
    assert uploaded["name"] == "dataset.zip"
    assert uploaded["content_type"] == "application/zip"
    assert replicate.files[uploaded["id"]] == archive.read_bytes()
    assert uploaded["urls"]["get"].endswith(f"/files/{uploaded['id']}")


def test_a_prediction_is_created_with_webhook_and_event_filter(
    client: ReplicateProvider, config: ProviderConfig, replicate: FakeReplicate
) -> None:
    prediction = client.create_prediction(
        config,
        version=replicate.version,
        inputs={"config_json": "{}"},
        webhook="https://st.example.com/api/webhooks/replicate",
    )
    assert prediction["status"] == "starting"
    sent = replicate.requests_to("POST", "/predictions")[0].json()
    assert sent["webhook"] == "https://st.example.com/api/webhooks/replicate"
    assert sent["webhook_events_filter"] == ["start", "output", "logs", "completed"]
    assert client.get_prediction(config, prediction["id"])["id"] == prediction["id"]


def test_invalid_input_is_a_422_input_error_with_the_providers_reasons(
    client: ReplicateProvider, config: ProviderConfig, replicate: FakeReplicate
) -> None:
    with pytest.raises(ProviderInputError) as caught:
        client.create_prediction(config, version="0" * 64, inputs={}, webhook=None)
    assert caught.value.status_code == 422
    fields = [f["field"] for f in caught.value.detail["invalid_fields"]]
    assert fields == ["version", "input.config_json"]
    assert "version does not exist" in caught.value.message
    assert len(replicate.requests_to("POST", "/predictions")) == 1


def test_429_waits_for_retry_after_then_succeeds(
    client: ReplicateProvider, config: ProviderConfig, replicate: FakeReplicate, slept: list[float]
) -> None:
    replicate.script(429, headers={"Retry-After": "3"}, path="/predictions")
    prediction = client.create_prediction(config, version=replicate.version, inputs={"config_json": "{}"}, webhook=None)
    assert prediction["status"] == "starting"
    assert slept == [3.0]
    assert len(replicate.requests_to("POST", "/predictions")) == 2
    assert len(replicate.predictions) == 1


def test_persistent_429_is_reported_with_retry_after(
    client: ReplicateProvider, config: ProviderConfig, replicate: FakeReplicate, slept: list[float]
) -> None:
    replicate.script(429, headers={"Retry-After": "1"}, times=10)
    with pytest.raises(ProviderRateLimited) as caught:
        client.account(config)
    assert caught.value.retry_after == 1.0
    assert slept == [1.0, 1.0, 1.0]


def test_5xx_then_success_for_a_read(
    client: ReplicateProvider, config: ProviderConfig, replicate: FakeReplicate, slept: list[float]
) -> None:
    prediction = client.create_prediction(config, version=replicate.version, inputs={"config_json": "{}"}, webhook=None)
    replicate.script(502, path="/predictions/", times=2)
    assert client.get_prediction(config, prediction["id"])["id"] == prediction["id"]
    assert len(slept) == 2
    assert CircuitBreaker.objects.get(provider="replicate").failures_total == 0


def test_5xx_on_create_is_not_retried(
    client: ReplicateProvider, config: ProviderConfig, replicate: FakeReplicate
) -> None:
    replicate.script(500, path="/predictions")
    with pytest.raises(ProviderUnavailable):
        client.create_prediction(config, version=replicate.version, inputs={"config_json": "{}"}, webhook=None)
    assert len(replicate.requests_to("POST", "/predictions")) == 1
    assert replicate.predictions == {}


def test_a_slow_replicate_times_out(
    client: ReplicateProvider, config: ProviderConfig, replicate: FakeReplicate, settings: SettingsWrapper
) -> None:
    config.http_timeout = 0.3
    config.save()
    replicate.script(200, body={"username": "late"}, delay=2, times=4)
    with pytest.raises(ProviderTimeout):
        ReplicateProvider(policy=RetryPolicy(retries=0, backoff=0, backoff_max=0, retry_after_max=0)).account(config)


def test_the_circuit_opens_on_repeated_failures_and_recovers(
    client: ReplicateProvider, config: ProviderConfig, replicate: FakeReplicate, settings: SettingsWrapper
) -> None:
    settings.SIMPLETUNER_CIRCUIT_FAILURE_THRESHOLD = 2
    replicate.script(503, times=100)
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            client.account(config)
    seen = len(replicate.requests)
    with pytest.raises(CircuitOpenError):
        client.account(config)
    assert len(replicate.requests) == seen
    # The outage ends and the open interval passes: one probe closes the circuit.
    replicate._script.clear()
    breaker = CircuitBreaker.objects.get(provider="replicate")
    CircuitBreaker.objects.filter(pk=breaker.pk).update(opened_at=breaker.opened_at - timedelta(seconds=120))
    assert client.account(config)["username"] == "simpletuner-ops"
    assert CircuitBreaker.objects.get(provider="replicate").state == CircuitState.CLOSED


def test_cancel_returns_the_cancelled_prediction(
    client: ReplicateProvider, config: ProviderConfig, replicate: FakeReplicate
) -> None:
    prediction = client.create_prediction(config, version=replicate.version, inputs={"config_json": "{}"}, webhook=None)
    assert client.cancel_prediction(config, prediction["id"])["status"] == "canceled"


def test_the_webhook_signing_secret_is_fetched_from_the_provider(
    client: ReplicateProvider, config: ProviderConfig, replicate: FakeReplicate
) -> None:
    assert client.webhook_secret(config) == replicate.webhook_secret
    assert replicate.webhook_secret.startswith("whsec_")


def test_the_fake_delivers_webhooks_signed_as_standard_webhooks(
    client: ReplicateProvider, config: ProviderConfig, replicate: FakeReplicate
) -> None:
    with LoopbackServer() as receiver:
        prediction = client.create_prediction(
            config, version=replicate.version, inputs={"config_json": "{}"}, webhook=receiver.url() + "/hook"
        )
        replicate.advance(prediction["id"], "succeeded", predict_time=12.5, logs="done")
        assert replicate.deliver_webhook(prediction["id"]).status_code == 200
    delivered = receiver.requests[0]
    payload = Webhook(replicate.webhook_secret).verify(delivered.body, delivered.headers)
    assert payload["status"] == "succeeded"
    assert payload["metrics"]["predict_time"] == 12.5
    assert json.loads(delivered.body)["id"] == prediction["id"]
