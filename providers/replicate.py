"""The `replicate` provider: a client of Replicate's HTTP API (https://replicate.com/docs/reference/http).

Base URL REPLICATE_API_BASE_URL (tests point it at a local Replicate-compatible server);
token REPLICATE_API_TOKEN through the secrets chain, read on every call so a rotated token
applies at once. Jobs run SimpleTuner's trainer (`REPLICATE_MODEL` or the provider's `model`,
at its latest version unless `version_override` names one) as a prediction; Replicate pushes
status to our webhook, and the background sync polls when webhooks are late.
"""

from __future__ import annotations

import json
import mimetypes
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ValidationError

from cloudops.health import Component, elapsed_ms
from cloudops.secrets import get_secret
from cloudops.structured_logging import get_logger
from providers.base import (
    HardwareOption,
    Phase,
    RemoteState,
    SecretUnavailable,
    SigningSecret,
    Submitted,
    run_seconds_of,
)
from providers.credentials import has_public_url, job_upload_bearer, job_upload_credentials, webhook_url
from providers.errors import CircuitOpenError, ProviderConfigError, ProviderError, ProviderInputError
from providers.http import ProviderHTTP, RetryPolicy
from providers.models import Job, JobStatus, ProviderConfig

logger = get_logger("simpletuner.cloud.providers.replicate")

TOKEN_KEY = "REPLICATE_API_TOKEN"
REPLICATE_SECRET_KEY = "REPLICATE_WEBHOOK_SECRET"
_SECRET_CACHE_KEY = "cloudops:webhook-secret:{provider}"
WEBHOOK_EVENTS = ["start", "output", "logs", "completed"]
STATUS_MAP = {
    "starting": JobStatus.QUEUED,
    "processing": JobStatus.RUNNING,
    "succeeded": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "canceled": JobStatus.CANCELLED,
    "aborted": JobStatus.FAILED,
}


def _hardware(hw_id: str, label: str, per_hour: float) -> tuple[str, HardwareOption]:
    return hw_id, HardwareOption(id=hw_id, label=label, price_per_second=round(per_hour / 3600, 9))


# Replicate's published prices (USD per hour); operators override them in `hardware`.
REPLICATE_HARDWARE = dict(
    [
        _hardware("gpu-l40s", "1x L40S (48 GB)", 3.51),
        _hardware("gpu-l40s-2x", "2x L40S (96 GB)", 7.02),
        _hardware("gpu-l40s-4x", "4x L40S (192 GB)", 14.04),
        _hardware("gpu-l40s-8x", "8x L40S (384 GB)", 28.08),
        _hardware("gpu-h100", "1x H100 (80 GB)", 5.49),
        _hardware("gpu-h100-2x", "2x H100 (160 GB)", 10.98),
        _hardware("gpu-h100-4x", "4x H100 (320 GB)", 21.96),
        _hardware("gpu-h100-8x", "8x H100 (640 GB)", 43.92),
    ]
)


def config_value(config: dict[str, Any], key: str) -> Any:
    """SimpleTuner configs spell keys with or without the leading `--`."""
    return config.get(key, config.get(f"--{key}"))


def prediction_state(prediction: dict[str, Any]) -> RemoteState:
    """A Replicate prediction object in our vocabulary. Defensive about types: the object
    also arrives in webhooks, where a field of the wrong type must not raise."""
    metrics = prediction.get("metrics")
    predict_time = metrics.get("predict_time") if isinstance(metrics, dict) else None
    output = prediction.get("output")
    if isinstance(output, list):
        output = next((item for item in output if isinstance(item, str)), "")
    error = prediction.get("error")
    status, logs, external_id = prediction.get("status"), prediction.get("logs"), prediction.get("id")
    return RemoteState(
        status=STATUS_MAP.get(status) if isinstance(status, str) else None,
        error=str(error) if error else "",
        logs=logs if isinstance(logs, str) else None,
        run_seconds=run_seconds_of(predict_time),
        output_url=output if isinstance(output, str) else "",
        external_id=external_id if isinstance(external_id, str) else "",
        started_at=_timestamp(prediction.get("started_at")),
        completed_at=_timestamp(prediction.get("completed_at")),
    )


def _timestamp(value: Any) -> datetime | None:
    """Replicate's ISO 8601 times (`2025-01-01T00:00:00.123456Z`); None if absent or invalid."""
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


class ReplicateProvider:
    name = "replicate"
    display_name = "Replicate"
    # Off until an operator enables it (and configures REPLICATE_API_TOKEN).
    enabled_by_default = False
    default_hardware = "gpu-l40s"
    # A finished prediction's logs are the ones stored with the job.
    logs_after_end = False
    remote = True

    def __init__(self, policy: RetryPolicy | None = None) -> None:
        self.policy = policy

    def hardware_defaults(self) -> dict[str, HardwareOption]:
        return dict(REPLICATE_HARDWARE)

    def validate_submission(self, *, config: dict[str, Any], trusted: bool) -> None:
        if "command" in config:
            raise ValidationError({"config": ["command: only the local provider runs commands."]})
        steps = config_value(config, "max_train_steps")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise ValidationError({"config": ["max_train_steps: must be a positive integer."]})

    # --- HTTP API --------------------------------------------------------------------------------

    def http(self, provider_config: ProviderConfig) -> ProviderHTTP:
        token = get_secret(TOKEN_KEY)
        if not token:
            raise ProviderConfigError(
                f"{TOKEN_KEY} is not configured (environment or secrets store)", provider=self.name
            )
        return ProviderHTTP(
            provider_config,
            base_url=settings.REPLICATE_API_BASE_URL,
            headers={"Authorization": f"Bearer {token}"},
            policy=self.policy,
        )

    def account(self, provider_config: ProviderConfig) -> dict[str, Any]:
        return self.http(provider_config).request("GET", "/account", idempotent=True).json()

    def model_versions(self, provider_config: ProviderConfig, model: str) -> list[dict[str, Any]]:
        response = self.http(provider_config).request("GET", f"/models/{model}/versions", idempotent=True)
        return response.json().get("results", [])

    def latest_version(self, provider_config: ProviderConfig, model: str) -> str:
        found = self.http(provider_config).request("GET", f"/models/{model}", idempotent=True).json()
        version = (found.get("latest_version") or {}).get("id")
        if not version:
            raise ProviderInputError(f"model {model} has no published version", provider=self.name)
        return version

    def upload_file(self, provider_config: ProviderConfig, path: Path) -> dict[str, Any]:
        """POST /files (multipart); returns the file object, whose urls.get feeds an input."""
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        with path.open("rb") as handle:
            response = self.http(provider_config).request(
                "POST", "/files", idempotent=False, files={"content": (path.name, handle, content_type)}
            )
        return response.json()

    def create_prediction(
        self, provider_config: ProviderConfig, *, version: str, inputs: dict[str, Any], webhook: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"version": version, "input": inputs}
        if webhook:
            body["webhook"] = webhook
            body["webhook_events_filter"] = WEBHOOK_EVENTS
        return self.http(provider_config).request("POST", "/predictions", idempotent=False, json=body).json()

    def get_prediction(self, provider_config: ProviderConfig, prediction_id: str) -> dict[str, Any]:
        return self.http(provider_config).request("GET", f"/predictions/{prediction_id}", idempotent=True).json()

    def cancel_prediction(self, provider_config: ProviderConfig, prediction_id: str) -> dict[str, Any]:
        # Cancelling twice is harmless, so the call may be retried.
        path = f"/predictions/{prediction_id}/cancel"
        return self.http(provider_config).request("POST", path, idempotent=True).json()

    def webhook_secret(self, provider_config: ProviderConfig) -> str:
        """The account's webhook signing secret (`whsec_...`)."""
        body = self.http(provider_config).request("GET", "/webhooks/default/secret", idempotent=True).json()
        return body["key"]

    # --- Provider protocol --------------------------------------------------------------------

    def trainer_inputs(
        self, *, job: Job, provider_config: ProviderConfig, images: str, warnings: list[str]
    ) -> dict[str, Any]:
        """SimpleTuner's trainer inputs. Secrets go only into the secret-typed inputs
        (s3_secret_key, s3_upload_token, hf_token), never into config_json."""
        inputs: dict[str, Any] = {
            "config_json": json.dumps(job.config),
            "dataloader_json": json.dumps(job.dataloader_config),
        }
        if images:
            inputs["images"] = images
        for key in ("hub_model_id", "max_train_steps"):
            if config_value(job.config, key) is not None:
                inputs[key] = config_value(job.config, key)
        if provider_config.s3_endpoint_enabled and has_public_url(provider_config):
            creds = job_upload_credentials(job, provider_config)
            inputs.update(
                s3_endpoint_url=creds.endpoint_url,
                s3_bucket=creds.bucket,
                s3_access_key=creds.access_key_id,
                s3_secret_key=creds.secret_access_key,
                s3_upload_token=job_upload_bearer(job.upload_token),
            )
        elif provider_config.s3_endpoint_enabled:
            warnings.append(
                "No public URL is configured (SIMPLETUNER_PUBLIC_URL or s3_public_url): the job cannot upload its "
                "outputs back to this server."
            )
        hf_token = get_secret("HF_TOKEN")
        if hf_token:
            inputs["hf_token"] = hf_token
        return inputs

    def _images(self, job: Job, provider_config: ProviderConfig, phase: Phase) -> str:
        from providers.datasets import dataset_archive, is_url

        if not job.dataset or is_url(job.dataset):
            return job.dataset
        phase(JobStatus.UPLOADING, "uploading the dataset")
        with dataset_archive(job.dataset) as archive:
            uploaded = self.upload_file(provider_config, archive)
        return uploaded["urls"]["get"]

    def submit(self, *, job: Job, provider_config: ProviderConfig, phase: Phase) -> Submitted:
        warnings: list[str] = []
        model = provider_config.model or settings.REPLICATE_MODEL
        version = provider_config.version_override or self.latest_version(provider_config, model)
        images = self._images(job, provider_config, phase)
        inputs = self.trainer_inputs(job=job, provider_config=provider_config, images=images, warnings=warnings)
        hook = webhook_url(provider_config) if has_public_url(provider_config) else None
        if hook is None:
            warnings.append(
                "No public URL is configured: Replicate cannot deliver webhooks, so the job's status is polled "
                f"every {settings.SIMPLETUNER_SYNC_INTERVAL:.0f} s."
            )
        prediction = self.create_prediction(provider_config, version=version, inputs=inputs, webhook=hook)
        return Submitted(prediction_state(prediction), warnings)

    def poll(self, *, job: Job, provider_config: ProviderConfig) -> RemoteState:
        if not job.external_id:
            return RemoteState(status=None)
        return prediction_state(self.get_prediction(provider_config, job.external_id))

    def cancel(self, *, job: Job, provider_config: ProviderConfig) -> RemoteState | None:
        if not job.external_id:
            return None
        return prediction_state(self.cancel_prediction(provider_config, job.external_id))

    def ended(self, *, job: Job, provider_config: ProviderConfig) -> None:
        """Nothing of a prediction runs on our side."""

    def signing_secret(self, *, provider_config: ProviderConfig, job_id: str, refresh: bool) -> SigningSecret:
        """REPLICATE_WEBHOOK_SECRET from the secrets chain; else the account's secret from
        Replicate's API, kept in the Django cache (shared by every process when REDIS_URL is
        set) for SIMPLETUNER_WEBHOOK_SECRET_TTL seconds and fetched again on `refresh`. While
        Redis is down or hung the cache read is a miss, so each delivery fetches it."""
        configured = get_secret(REPLICATE_SECRET_KEY)
        if configured:
            return SigningSecret(configured)
        key = _SECRET_CACHE_KEY.format(provider=provider_config.name)
        cached = None if refresh else cache.get(key)
        if cached:
            return SigningSecret(cached, refetchable=True)
        try:
            secret = self.webhook_secret(provider_config)
        except (ProviderError, KeyError, TypeError, ValueError) as exc:
            message = exc.message if isinstance(exc, ProviderError) else "unexpected answer"
            raise SecretUnavailable(f"cannot fetch Replicate's webhook secret: {message}") from exc
        if not isinstance(secret, str) or not secret:
            raise SecretUnavailable("Replicate returned an empty webhook secret")
        cache.set(key, secret, settings.SIMPLETUNER_WEBHOOK_SECRET_TTL)
        logger.info("fetched the webhook signing secret from Replicate", extra={"refresh": refresh})
        return SigningSecret(secret, refetchable=True)

    def logs(self, *, job: Job, provider_config: ProviderConfig) -> str | None:
        if not job.external_id:
            return None
        return self.get_prediction(provider_config, job.external_id).get("logs")

    def health(self, *, provider_config: ProviderConfig) -> Component:
        started = time.perf_counter()
        try:
            account = self.account(provider_config)
        except ProviderError as exc:
            latency = elapsed_ms(started)
            # Our own configuration and an open circuit are safe to name; provider errors are not.
            known = isinstance(exc, ProviderConfigError | CircuitOpenError)
            message = exc.message if known else "Replicate API check failed"
            return Component("provider:replicate", "degraded", message, latency, error=exc.message)
        latency = elapsed_ms(started)
        who = account.get("username") or "unknown account"
        return Component("provider:replicate", "healthy", f"Replicate API reachable ({who})", latency)
