"""Job submission: validate, record, start at the provider, idempotently.

A submission is recorded in one transaction with its `job.submitted` audit entry and its
start claim (`start_claimed_at`), then started at the provider. If the process dies between
the two, the job stays `pending` with nothing at the provider; once its claim is
SIMPLETUNER_SUBMIT_CLAIM_SECONDS old, a retry with the same Idempotency-Key (or the background
sync, providers.sync) claims it again and starts it. Claims are a conditional UPDATE, so of
several processes only one starts a job. Accepted race, written down here: a start that takes
longer than the claim (a dataset upload to Replicate slower than the setting) may be started
a second time by a retry or the sync; raise the setting above your slowest upload.

Quotas (governance.quotas) are checked in the transaction that records the job: a `block`
quota refuses it (403), a `queue` quota records it `queued` for governance.queue to start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.exceptions import APIException, ValidationError

from audit.services import audit_record
from cloudops import audit_events as events
from cloudops import notify
from cloudops.auditing import Actor
from cloudops.permissions import has_staff_perm
from cloudops.structured_logging import LogContext, get_logger
from governance.holds import approval_request_create
from governance.quotas import QuotaExceeded, Verdict, quota_verdict, quota_verdict_record
from governance.rules import Hold, submission_hold
from providers.base import HardwareOption, Phase
from providers.config import provider_config_get
from providers.config_secrets import credential_keys
from providers.costs import cost_limit_check, resolve_hardware
from providers.credit import credit_warnings
from providers.datasets import validate_dataset
from providers.errors import ProviderError
from providers.events import job_notification_data
from providers.jobs import job_apply_remote, job_transition
from providers.models import TERMINAL_STATUSES, Job, JobStatus, ProviderConfig
from providers.registry import get_provider
from providers.sync import job_watch

logger = get_logger("simpletuner.cloud.jobs")

MAX_CONFIG_BYTES = 256 * 1024


class IdempotencyConflict(APIException):
    status_code = 409
    default_code = "idempotency_conflict"


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


def validate_job_input(*, config: dict[str, Any], dataloader_config: list[Any], dataset: str) -> None:
    """Checks every provider shares: size, no credentials in configs, a known dataset."""
    if len(json.dumps(config)) + len(json.dumps(dataloader_config)) > MAX_CONFIG_BYTES:
        raise ValidationError(
            {"config": [f"config and dataloader_config together must stay under {MAX_CONFIG_BYTES} bytes."]}
        )
    for name, value in (("config", config), ("dataloader_config", dataloader_config)):
        secrets = credential_keys(value)
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


def _idempotent_match(owner: User, key: str, fingerprint: str) -> Job | None:
    existing = Job.objects.filter(owner=owner, idempotency_key=key).first()
    if existing is not None and existing.request_fingerprint != fingerprint:
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different request body; use a new key for a new job."
        )
    return existing


def _create_job(
    *, idempotency_key: str | None, audit: dict[str, Any], hold: Hold | None = None, **values: Any
) -> tuple[Job, bool, Verdict]:
    """Insert the job, claimed for starting, with its `job.submitted` entry in one transaction
    (if the audit trail refuses, there is no job either). A concurrent request with the same
    key loses on the unique constraint and gets the winner's job (retries never make two).
    A job an approval rule holds is inserted `pending_approval`, unclaimed, with its request;
    one a `queue` quota holds is inserted `queued`, unclaimed (governance.queue starts it).
    A `block` quota records its refusal in the transaction and raises QuotaExceeded after it."""
    now = timezone.now()
    try:
        with transaction.atomic():
            verdict = quota_verdict(owner=values["owner"], now=now)
            if verdict.block is None:
                job = _insert(
                    idempotency_key=idempotency_key, audit=audit, hold=hold, verdict=verdict, now=now, **values
                )
                return job, True, verdict
            quota_verdict_record(verdict, owner=values["owner"], job_id=None, audit=audit)
    except IntegrityError:
        if not idempotency_key:
            raise
        existing = _idempotent_match(values["owner"], idempotency_key, values["request_fingerprint"])
        if existing is None:
            raise
        return existing, False, Verdict()
    raise QuotaExceeded(verdict.block)


def _insert(
    *,
    idempotency_key: str | None,
    audit: dict[str, Any],
    hold: Hold | None,
    verdict: Verdict,
    now: datetime,
    **values: Any,
) -> Job:
    """The job row, its entries and its approval request, in the caller's transaction."""
    claimed: datetime | None = now
    status = JobStatus.PENDING
    if hold is not None:
        status, claimed = JobStatus.PENDING_APPROVAL, None
    elif verdict.queue is not None:
        status, claimed = JobStatus.QUEUED, None
    job = Job.objects.create(idempotency_key=idempotency_key, start_claimed_at=claimed, status=status, **values)
    audit_record(event_type=events.JOB_SUBMITTED, target_type="job", target_id=job.pk, **audit)
    notify.notify(notify.JOB_SUBMITTED, partial(job_notification_data, job), owner_id=job.owner_id)
    verdict_now = verdict if hold is None else Verdict(warn=verdict.warn)
    quota_verdict_record(verdict_now, owner=job.owner, job_id=job.pk, audit=audit)
    if hold is not None:
        approval_request_create(job=job, hold=hold, now=now, audit=audit)
    return job


def _admit(
    *,
    owner: User,
    provider: str,
    config: dict[str, Any],
    dataloader_config: list[Any],
    dataset: str,
    hardware: str,
) -> tuple[ProviderConfig, HardwareOption, list[str]]:
    """Everything checked before a job is recorded; returns the provider's configuration,
    the resolved hardware and cost-limit and credit warnings (or raises the 4xx that refuses it)."""
    provider_config = provider_config_get(provider)
    if not provider_config.enabled:
        hint = f'PATCH /api/cloud/providers/{provider} {{"enabled": true}}'
        raise ValidationError({"provider": [f"{provider} is disabled; a staff user can enable it with {hint}."]})
    # A custom local command runs as the server's user, so SIMPLETUNER_LOCAL_COMMANDS=staff
    # admits staff who may reconfigure providers, not staff status alone.
    trusted = has_staff_perm(owner, "providers.change_providerconfig")
    get_provider(provider).validate_submission(config=config, trusted=trusted)
    validate_job_input(config=config, dataloader_config=dataloader_config, dataset=dataset)
    option = resolve_hardware(provider_config, hardware)
    return provider_config, option, [*cost_limit_check(provider_config), *credit_warnings(provider_config)]


def job_submit(
    *,
    owner: User,
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
        return _retried(existing)
    provider_config, option, warnings = _admit(
        owner=owner,
        provider=provider,
        config=config,
        dataloader_config=dataloader_config,
        dataset=dataset,
        hardware=hardware,
    )
    audit = {
        "request": request,
        "actor": None if request else Actor(username=owner.get_username()),
        "action": "submit",
        "details": {"provider": provider, "hardware": option.id, "name": name},
    }
    hold = submission_hold(owner=owner, provider=provider, option=option, config=config, now=timezone.now())
    job, created, verdict = _create_job(
        idempotency_key=idempotency_key,
        audit=audit,
        hold=hold,
        owner=owner,
        hardware=option.id,
        dataset=dataset,
        request_fingerprint=fingerprint,
        **body,
    )
    if not created:
        return _retried(job)
    warnings += verdict.warnings
    if hold is not None:
        # Nothing reaches the provider, and no upload credentials exist, until it is approved.
        logger.info("job held for approval", extra={"job_id": job.pk, "rule": hold.rule.name})
        return SubmitResult(job=job, created=True, warnings=[*warnings, f"Held for approval ({hold.reason})."])
    if verdict.queue is not None:
        logger.info("job queued by a quota", extra={"job_id": job.pk, "quota_id": verdict.queue.quota.pk})
        queued = f"Queued until a slot frees: {verdict.queue.message}"
        return SubmitResult(job=job, created=True, warnings=[*warnings, queued])
    with LogContext(job_id=job.pk, provider=provider):
        logger.info("Job submitted", extra={"hardware": option.id})
        warnings += _start(job=job, provider_config=provider_config)
    return SubmitResult(job=job, created=True, warnings=warnings)


def _abandoned() -> Q:
    """Jobs recorded but never started whose start claim is old enough to be taken over."""
    before = timezone.now() - timedelta(seconds=settings.SIMPLETUNER_SUBMIT_CLAIM_SECONDS)
    # Rows from before start claims existed count as claimed when they were created.
    unclaimed_old = Q(start_claimed_at__isnull=True, created_at__lt=before)
    return Q(status=JobStatus.PENDING, external_id="") & (unclaimed_old | Q(start_claimed_at__lt=before))


def _claim_start(job: Job) -> bool:
    """Claim an abandoned submission for starting (a conditional UPDATE: one claimer wins)."""
    return bool(Job.objects.filter(_abandoned(), pk=job.pk).update(start_claimed_at=timezone.now()))


def _retried(job: Job) -> SubmitResult:
    """A retry's answer: the first request's job, started now if its starter died before."""
    if not _claim_start(job):
        return SubmitResult(job=job, created=False)
    with LogContext(job_id=job.pk, provider=job.provider):
        logger.warning("a submission whose start was abandoned is started by its retry")
        warnings = _start(job=job, provider_config=provider_config_get(job.provider))
    return SubmitResult(job=job, created=False, warnings=warnings)


def job_start_abandoned(*, job: Job) -> bool:
    """Start a submission whose starter died (the background sync's call); False if another
    process claimed it first. A provider refusal fails the job, as at submission."""
    if not _claim_start(job):
        return False
    with LogContext(job_id=job.pk, provider=job.provider):
        logger.warning("a submission whose start was abandoned is started by the sync")
        # A refusal is recorded on the job (failed, with the reason): nobody waits for it here.
        with contextlib.suppress(SubmitFailed):
            _start(job=job, provider_config=provider_config_get(job.provider))
    return True


def job_start_queued(*, job: Job) -> None:
    """Start a job the quota queue just dispatched (governance.queue), once: its claim moved
    the job's start claim from none to now. A provider refusal fails the job, as at submission."""
    with LogContext(job_id=job.pk, provider=job.provider):
        logger.info("queued job dispatched")
        with contextlib.suppress(SubmitFailed):
            _start(job=job, provider_config=provider_config_get(job.provider))


def job_start_approved(*, job: Job) -> list[str]:
    """Start a job whose approval was just granted (governance.approvals), once: the approval's
    conditional UPDATE let one caller through, and that caller moved the job to `pending`
    with a fresh start claim. A provider refusal fails the job and raises SubmitFailed."""
    with LogContext(job_id=job.pk, provider=job.provider):
        logger.info("approved job started")
        return _start(job=job, provider_config=provider_config_get(job.provider))


def abandoned_submissions() -> list[Job]:
    return list(Job.objects.filter(_abandoned()).order_by("created_at")[:100])


def _phase(job: Job) -> Phase:
    """What a provider reports about a submission before it returns, recorded on the job."""

    def report(status: str, reason: str) -> None:
        job_transition(job=job, to=status, reason=reason, source="submit")

    return report


def _start(*, job: Job, provider_config: ProviderConfig) -> list[str]:
    client = get_provider(job.provider)
    try:
        submitted = client.submit(job=job, provider_config=provider_config, phase=_phase(job))
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
    remote = submitted.state
    if submitted.wait is not None:
        job_watch(job_id=job.pk, wait=submitted.wait, source=f"{job.provider}-runner")
    job_apply_remote(job=job, remote=remote, source="submit", provider_config=provider_config)
    if job.status == JobStatus.CANCELLED and remote.status not in TERMINAL_STATUSES:
        # Cancelled while we were submitting: stop what the provider just started.
        try:
            client.cancel(job=job, provider_config=provider_config)
        except ProviderError as exc:
            logger.warning("could not cancel a job cancelled during submission", extra={"error": exc.message})
    return submitted.warnings
