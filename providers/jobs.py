"""Job services: submit, the one status-transition function, provider state, cancel, logs.

The API, the admin, the background sync, the local runner's watcher and (later) the webhook
endpoint all change jobs through these functions.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.exceptions import APIException, ValidationError

from audit import events
from audit.services import Actor, audit_record
from cloudops.structured_logging import LogContext, get_logger
from providers.base import HardwareOption, RemoteState
from providers.config import provider_config_get
from providers.costs import cost_limit_check, job_cost, resolve_hardware
from providers.datasets import validate_dataset
from providers.errors import ProviderError
from providers.events import job_event_after_commit
from providers.models import ACTIVE_STATUSES, STATUS_RANK, TERMINAL_STATUSES, Job, JobStatus, ProviderConfig
from providers.registry import get_provider

logger = get_logger("cloudops.providers.jobs")

MAX_CONFIG_BYTES = 256 * 1024
# Config keys that name a credential: such values belong in the secrets chain, never in a
# job config (which is stored, shown in the API and sent to providers as config_json).
_SECRET_WORDS = {"token", "secret", "password", "passwd", "passphrase", "credential", "credentials", "apikey"}
_SECRET_PAIRS = {("api", "key"), ("access", "key"), ("secret", "key"), ("private", "key"), ("auth", "key")}


class IdempotencyConflict(APIException):
    status_code = 409
    default_code = "idempotency_conflict"


class JobConflict(APIException):
    status_code = 409
    default_code = "job_conflict"


class SubmitFailed(Exception):
    """The job was recorded but the provider refused or failed it; the job is now failed."""

    def __init__(self, job: Job, error: ProviderError) -> None:
        super().__init__(error.message)
        self.job = job
        self.error = error


@dataclass
class SubmitResult:
    job: Job
    created: bool
    warnings: list[str] = field(default_factory=list)


# --- Status transitions ------------------------------------------------------------------------


def job_transition(
    *,
    job: Job,
    to: str,
    reason: str = "",
    source: str = "system",
    fields: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    actor: Actor | None = None,
    now: datetime | None = None,
) -> bool:
    """Move `job` to status `to` if that is forward; returns whether this call moved it.

    Compare-and-set: one UPDATE ... WHERE status = <the status we read>, checked by its row
    count, with the `job.status_changed` audit entry in the same transaction. Statuses only
    move to a higher rank (providers.models.STATUS_RANK) and terminal ones never change, so
    late or out-of-order events are ignored. `fields` are written in the same UPDATE.
    `job` is refreshed from the database either way.
    """
    now = now or timezone.now()
    for _ in range(len(STATUS_RANK)):  # each lost race means the job moved forward: bounded
        current = Job.objects.filter(pk=job.pk).values("status", "started_at").first()
        if current is None or current["status"] in TERMINAL_STATUSES:
            break
        if STATUS_RANK[to] <= STATUS_RANK[current["status"]]:
            break
        updates: dict[str, Any] = {"status": to, "updated_at": now, **(fields or {})}
        # A provider-reported time in `fields` wins over the time we heard of the change.
        if to == JobStatus.RUNNING and current["started_at"] is None:
            updates.setdefault("started_at", now)
        if to in TERMINAL_STATUSES:
            updates.setdefault("completed_at", now)
        with transaction.atomic():
            moved = Job.objects.filter(pk=job.pk, status=current["status"]).update(**updates)
            if moved:
                audit_record(
                    event_type=events.JOB_STATUS_CHANGED,
                    request=request,
                    actor=actor,
                    target_type="job",
                    target_id=job.pk,
                    action=to,
                    details={"from": current["status"], "to": to, "reason": reason[:500], "source": source},
                )
        if moved:
            # Every status change passes here once: the place to publish job events (SSE).
            job_event_after_commit(kind="job.status", job_id=job.pk, previous_status=current["status"])
            job.refresh_from_db()
            logger.info(
                "job status changed",
                extra={"job_id": job.pk, "from": current["status"], "to": to, "source": source},
            )
            return True
    job.refresh_from_db()
    return False


def cap_logs(text: str) -> str:
    """The last SIMPLETUNER_JOB_LOG_MAX_BYTES of a log (the end is what explains a failure)."""
    limit = settings.SIMPLETUNER_JOB_LOG_MAX_BYTES
    return text if len(text) <= limit else text[-limit:]


def job_apply_remote(
    *, job: Job, remote: RemoteState, source: str, provider_config: ProviderConfig | None = None
) -> bool:
    """Record what the provider says: status (forward only), cost, logs, progress, output.

    Returns whether the status changed. Activity fields of a job still active are updated
    even when the status does not move; a terminal job is left as it is.
    """
    now = timezone.now()
    fields: dict[str, Any] = {"last_synced_at": now}
    if remote.logs is not None:
        fields["logs"] = cap_logs(remote.logs)
    if remote.progress:
        fields["progress"] = remote.progress
    if remote.output_url:
        fields["output_url"] = remote.output_url[:2048]
    if remote.external_id and not job.external_id:
        fields["external_id"] = remote.external_id[:128]
    if remote.status in TERMINAL_STATUSES and remote.run_seconds is not None:
        provider_config = provider_config or provider_config_get(job.provider)
        fields["run_seconds"] = remote.run_seconds
        fields["cost_usd"] = job_cost(job=job, run_seconds=remote.run_seconds, provider_config=provider_config)
    if remote.status == JobStatus.FAILED and remote.error:
        fields["error"] = remote.error[:10000]
    if remote.started_at is not None and job.started_at is None:
        fields["started_at"] = remote.started_at
    if remote.completed_at is not None and remote.status in TERMINAL_STATUSES:
        fields["completed_at"] = remote.completed_at
    if remote.status and job_transition(
        job=job, to=remote.status, reason=f"{job.provider} reported {remote.status}", source=source, fields=fields
    ):
        return True
    activity = {k: v for k, v in fields.items() if k in ("last_synced_at", "logs", "progress", "output_url")}
    progressed = bool(remote.progress) and remote.progress != job.progress
    if Job.objects.filter(pk=job.pk, status__in=ACTIVE_STATUSES).update(**activity, updated_at=now):
        job.refresh_from_db()
        if progressed:
            job_event_after_commit(kind="job.progress", job_id=job.pk)
    return False


def job_refresh(*, job: Job, source: str = "sync") -> bool:
    """Ask the provider for the job's state and record it (sync, local watcher, logs)."""
    provider_config = provider_config_get(job.provider)
    with LogContext(job_id=job.pk, provider=job.provider):
        remote = get_provider(job.provider).poll(job=job, provider_config=provider_config)
        return job_apply_remote(job=job, remote=remote, source=source, provider_config=provider_config)


# --- Submit --------------------------------------------------------------------------------------


def _words(key: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower()) if w]


def _secret_keys(value: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            words = _words(str(key))
            pairs = set(zip(words, words[1:], strict=False))
            if _SECRET_WORDS.intersection(words) or _SECRET_PAIRS & pairs:
                found.append(f"{path}{key}")
            found += _secret_keys(item, f"{path}{key}.")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _secret_keys(item, f"{path}{index}.")
    return found


def validate_job_input(*, config: dict[str, Any], dataloader_config: list[Any], dataset: str) -> None:
    """Checks every provider shares: size, no credentials in configs, a known dataset."""
    if len(json.dumps(config)) + len(json.dumps(dataloader_config)) > MAX_CONFIG_BYTES:
        raise ValidationError(
            {"config": [f"config and dataloader_config together must stay under {MAX_CONFIG_BYTES} bytes."]}
        )
    for name, value in (("config", config), ("dataloader_config", dataloader_config)):
        secrets = _secret_keys(value)
        if secrets:
            raise ValidationError(
                {
                    name: [
                        f"{', '.join(secrets)}: credentials do not belong in a job config (it is stored and shown); "
                        "configure them in the secrets chain (e.g. HF_TOKEN)."
                    ]
                }
            )
    try:
        validate_dataset(dataset)
    except ValueError as exc:
        raise ValidationError({"dataset": [str(exc)]})


def _fingerprint(**body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _idempotent_match(owner: AbstractBaseUser, key: str, fingerprint: str) -> Job | None:
    existing = Job.objects.filter(owner=owner, idempotency_key=key).first()
    if existing is not None and existing.request_fingerprint != fingerprint:
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different request body; use a new key for a new job."
        )
    return existing


def _create_job(*, idempotency_key: str | None, **values: Any) -> tuple[Job, bool]:
    """Insert the job; a concurrent request with the same key loses on the unique constraint
    and gets the winner's job instead (so retries never create two jobs)."""
    try:
        with transaction.atomic():
            return Job.objects.create(idempotency_key=idempotency_key, **values), True
    except IntegrityError:
        if not idempotency_key:
            raise
        existing = _idempotent_match(values["owner"], idempotency_key, values["request_fingerprint"])
        if existing is None:
            raise
        return existing, False


def _admit(
    *,
    owner: AbstractBaseUser,
    provider: str,
    config: dict[str, Any],
    dataloader_config: list[Any],
    dataset: str,
    hardware: str,
) -> tuple[ProviderConfig, HardwareOption, list[str]]:
    """Everything checked before a job is recorded; returns the provider's configuration,
    the resolved hardware and cost-limit warnings (or raises the 4xx that refuses it)."""
    provider_config = provider_config_get(provider)
    if not provider_config.enabled:
        hint = f'PATCH /api/cloud/providers/{provider} {{"enabled": true}}'
        raise ValidationError({"provider": [f"{provider} is disabled; a staff user can enable it with {hint}."]})
    get_provider(provider).validate_submission(config=config, user_is_staff=bool(getattr(owner, "is_staff", False)))
    validate_job_input(config=config, dataloader_config=dataloader_config, dataset=dataset)
    option = resolve_hardware(provider_config, hardware)
    return provider_config, option, cost_limit_check(provider_config)


def job_submit(
    *,
    owner: AbstractBaseUser,
    provider: str,
    config: dict[str, Any],
    dataloader_config: list[Any] | None = None,
    hardware: str = "",
    name: str = "",
    dataset: str = "",
    idempotency_key: str | None = None,
    request: HttpRequest | None = None,
) -> SubmitResult:
    """Validate, check cost limits, record the job, then start it at the provider.

    Same owner + same idempotency key returns the first job (created=False) as long as the
    body is the same (else IdempotencyConflict). A provider failure leaves the job `failed`
    with the reason and raises SubmitFailed.
    """
    dataloader_config = dataloader_config or []
    body = {"provider": provider, "config": config, "dataloader_config": dataloader_config, "name": name}
    fingerprint = _fingerprint(**body, hardware=hardware, dataset=dataset)
    if idempotency_key and (existing := _idempotent_match(owner, idempotency_key, fingerprint)):
        return SubmitResult(job=existing, created=False)
    provider_config, option, warnings = _admit(
        owner=owner,
        provider=provider,
        config=config,
        dataloader_config=dataloader_config,
        dataset=dataset,
        hardware=hardware,
    )
    job, created = _create_job(
        idempotency_key=idempotency_key,
        owner=owner,
        hardware=option.id,
        dataset=dataset,
        request_fingerprint=fingerprint,
        **body,
    )
    if not created:
        return SubmitResult(job=job, created=False)
    audit_record(
        event_type=events.JOB_SUBMITTED,
        request=request,
        actor=None if request else Actor(username=owner.get_username()),
        target_type="job",
        target_id=job.pk,
        action="submit",
        details={"provider": provider, "hardware": option.id, "name": name},
    )
    with LogContext(job_id=job.pk, provider=provider):
        logger.info("job submitted", extra={"hardware": option.id})
        warnings += _start(job=job, provider_config=provider_config)
    return SubmitResult(job=job, created=True, warnings=warnings)


def _start(*, job: Job, provider_config: ProviderConfig) -> list[str]:
    client = get_provider(job.provider)
    try:
        remote, warnings = client.submit(job=job, provider_config=provider_config)
    except ProviderError as exc:
        logger.warning("provider refused the job", extra={"error": exc.message})
        job_transition(
            job=job,
            to=JobStatus.FAILED,
            reason="submission failed",
            source="submit",
            fields={"error": f"Submission to {job.provider} failed: {exc.message}"},
        )
        raise SubmitFailed(job, exc) from exc
    job_apply_remote(job=job, remote=remote, source="submit", provider_config=provider_config)
    if job.status == JobStatus.CANCELLED and remote.status not in TERMINAL_STATUSES:
        # Cancelled while we were submitting: stop what the provider just started.
        try:
            client.cancel(job=job, provider_config=provider_config)
        except ProviderError as exc:
            logger.warning("could not cancel a job cancelled during submission", extra={"error": exc.message})
    return warnings


# --- Cancel and logs -------------------------------------------------------------------------------


def job_cancel(*, job: Job, request: HttpRequest | None = None, actor: Actor | None = None) -> Job:
    """Stop the job at the provider and mark it cancelled; a terminal job is a JobConflict."""
    if job.is_terminal:
        raise JobConflict(f"Job {job.pk} is already {job.status}.")
    who = actor or Actor.from_request(request)
    Job.objects.filter(pk=job.pk).update(cancel_requested_at=timezone.now())
    provider_config = provider_config_get(job.provider)
    with LogContext(job_id=job.pk, provider=job.provider):
        remote = get_provider(job.provider).cancel(job=job, provider_config=provider_config)
        if remote is not None and remote.status in TERMINAL_STATUSES and remote.status != JobStatus.CANCELLED:
            job_apply_remote(job=job, remote=remote, source="cancel", provider_config=provider_config)
            raise JobConflict(f"Job {job.pk} already {remote.status} at {job.provider}.")
        moved = job_transition(
            job=job,
            to=JobStatus.CANCELLED,
            reason=f"cancelled by {who.username or 'system'}",
            source="cancel",
            request=request,
            actor=actor,
        )
        if not moved:
            job.refresh_from_db()
            # The provider may have reported the cancellation first (a local job's watcher
            # records the exit our SIGTERM caused): that is the outcome asked for, not a conflict.
            if job.status != JobStatus.CANCELLED:
                raise JobConflict(f"Job {job.pk} is already {job.status}.")
        audit_record(
            event_type=events.JOB_CANCELLED,
            request=request,
            actor=actor,
            target_type="job",
            target_id=job.pk,
            action="cancel",
            details={"provider": job.provider},
        )
        logger.info("job cancelled")
    return job


@dataclass
class JobLogs:
    text: str
    truncated: bool
    source: str


def job_logs(*, job: Job) -> JobLogs:
    """The freshest logs: from the provider while the job is active (stored on the job as a
    side effect), else the stored tail. A provider outage falls back to the stored tail."""
    limit = settings.SIMPLETUNER_JOB_LOG_MAX_BYTES
    fresh = None
    if not job.is_terminal or job.provider == "local":
        try:
            fresh = get_provider(job.provider).logs(job=job, provider_config=provider_config_get(job.provider))
        except ProviderError as exc:
            logger.warning("could not fetch logs from the provider", extra={"job_id": job.pk, "error": exc.message})
    if fresh is None:
        return JobLogs(text=job.logs, truncated=len(job.logs) >= limit, source="stored")
    if not job.is_terminal:
        Job.objects.filter(pk=job.pk, status__in=ACTIVE_STATUSES).update(logs=cap_logs(fresh))
    return JobLogs(text=cap_logs(fresh), truncated=len(fresh) >= limit, source="provider")
