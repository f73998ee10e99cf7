"""Applying a verified delivery: once per webhook-id, forward only, to the job it names.

The replay record (WebhookDelivery, unique per provider and webhook-id) is inserted in the
transaction of the job update it records, so of two identical deliveries racing in different
processes exactly one applies. Applying goes through providers.jobs (forward-only status,
capped logs, cost), which writes `job.status_changed` and records the live event.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections, router, transaction
from django.utils import timezone

from cloudops.compiled import CompiledQuery
from cloudops.structured_logging import LogContext, get_logger
from providers.jobs import job_apply_remote
from providers.models import Job, ProviderConfig, WebhookDelivery
from providers.webhooks.outcome import WebhookOutcome
from providers.webhooks.payloads import WebhookPayload
from providers.webhooks.signing import TOLERANCE_SECONDS

logger = get_logger("simpletuner.cloud.webhooks")

PRUNE_BATCH = 500


def replay_expiry(timestamp: str, now: datetime | None = None) -> datetime:
    """Remember an id until its timestamp can no longer pass the tolerance, plus a margin."""
    now = now or timezone.now()
    try:
        stamped = datetime.fromtimestamp(float(timestamp), tz=now.tzinfo)
    except (ValueError, OverflowError, OSError):
        stamped = now
    horizon = max(now, min(stamped, now + timedelta(seconds=TOLERANCE_SECONDS)))
    return horizon + timedelta(seconds=TOLERANCE_SECONDS + settings.SIMPLETUNER_WEBHOOK_REPLAY_MARGIN)


def _claim(provider: str, webhook_id: str, expires_at: datetime) -> bool:
    """Record the id inside the caller's transaction; False if another delivery holds it.

    One INSERT that does nothing on a conflict (no savepoint, no error to recover from): two
    racing deliveries of one id both reach it, the unique key makes the second wait for the
    first's transaction and then insert nothing (on SQLite the IMMEDIATE transactions run one
    after the other), so exactly one applies. A record that has expired is taken over by a
    conditional UPDATE, so expired records need no pruning on this path (webhook_prune, from
    a background loop, keeps the table small).
    """
    now = timezone.now()
    if _insert_once(provider, webhook_id, now, expires_at):
        return True
    return bool(
        WebhookDelivery.objects.filter(provider=provider, webhook_id=webhook_id, expires_at__lt=now).update(
            job_id="", received_at=now, expires_at=expires_at
        )
    )


def _insert_once(provider: str, webhook_id: str, now: datetime, expires_at: datetime) -> bool:
    """INSERT the record unless (provider, webhook_id) exists; whether a row was inserted.
    Written in SQL because the ORM's ignore_conflicts does not say whether it inserted."""
    connection = connections[router.db_for_write(WebhookDelivery)]
    table = connection.ops.quote_name(WebhookDelivery._meta.db_table)
    columns = ", ".join(
        connection.ops.quote_name(c) for c in ("provider", "webhook_id", "job_id", "received_at", "expires_at")
    )
    values = [
        provider,
        webhook_id,
        "",
        connection.ops.adapt_datetimefield_value(now),
        connection.ops.adapt_datetimefield_value(expires_at),
    ]
    if connection.vendor == "mysql":
        sql = f"INSERT IGNORE INTO {table} ({columns}) VALUES (%s, %s, %s, %s, %s)"
    else:  # PostgreSQL and SQLite: the unique constraint is the conflict target
        keys = ", ".join(connection.ops.quote_name(c) for c in ("provider", "webhook_id"))
        sql = f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s, %s) ON CONFLICT ({keys}) DO NOTHING"
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.rowcount == 1


def webhook_prune(now: datetime | None = None) -> int:
    """Delete a batch of expired replay records; how many."""
    expired = WebhookDelivery.objects.filter(expires_at__lt=now or timezone.now())
    ids = list(expired.values_list("pk", flat=True)[:PRUNE_BATCH])
    return WebhookDelivery.objects.filter(pk__in=ids).delete()[0] if ids else 0


def webhook_prune_all(now: datetime | None = None, *, max_batches: int = 200) -> int:
    """Delete expired replay records a batch at a time (each its own short statement, so no
    delivery waits long behind it), up to `max_batches`; from the sync pass, under its lease."""
    deleted = 0
    for _ in range(max_batches):
        batch = webhook_prune(now)
        deleted += batch
        if batch < PRUNE_BATCH:
            break
    return deleted


# Compiled once per database: these reads run for every delivery (cloudops/compiled.py).
_JOB_BY_ID = CompiledQuery(
    Job, lambda provider, job_id: Job.objects.filter(provider=provider, pk=job_id).order_by()[:1], "provider", "job_id"
)
_JOB_BY_EXTERNAL_ID = CompiledQuery(
    Job,
    lambda provider, external_id: Job.objects.filter(provider=provider, external_id=external_id).order_by(
        "-created_at", "-id"
    )[:1],
    "provider",
    "external_id",
)


def _find_job(provider: str, payload: WebhookPayload) -> Job | None:
    if payload.job_id:
        return _JOB_BY_ID.first(provider=provider, job_id=payload.job_id)
    if payload.external_id:
        return _JOB_BY_EXTERNAL_ID.first(provider=provider, external_id=payload.external_id)
    return None


def webhook_apply(
    *, provider_config: ProviderConfig, payload: WebhookPayload, webhook_id: str, expires_at: datetime, signed: bool
) -> WebhookOutcome:
    """Apply a verified payload once per webhook-id (deliveries without an id, possible only
    when signatures are not required, are applied every time)."""
    provider = provider_config.name
    with transaction.atomic():
        if webhook_id and not _claim(provider, webhook_id, expires_at):
            logger.info("duplicate webhook ignored", extra={"provider": provider, "webhook_id": webhook_id})
            return WebhookOutcome(200, {"status": "duplicate"})
        job = _find_job(provider, payload)
        if job is None:
            logger.info(
                "webhook for an unknown job ignored",
                extra={"provider": provider, "external_id": payload.external_id, "job_id": payload.job_id},
            )
            return WebhookOutcome(200, {"status": "ignored"})
        before = _snapshot(job)
        progress = merged_progress(job.progress, payload.remote.progress)
        # Only progress that moves the job's progress forward is applied (the payload itself is not changed).
        remote = replace(payload.remote, progress=progress if progress != job.progress else {})
        source = f"webhook:{provider}" + ("" if signed else ":unsigned")
        with LogContext(job_id=job.pk, provider=provider):
            job_apply_remote(job=job, remote=remote, source=source, provider_config=provider_config)
        updates = {key: value for key, value in _snapshot(job).items() if value != before[key]}
    return WebhookOutcome(200, {"status": "received", "job_id": job.pk, "updates": updates})


# --- What a delivery changes -----------------------------------------------------------------------


def _snapshot(job: Job) -> dict[str, Any]:
    return {
        "status": job.status,
        "progress": job.progress,
        "output_url": job.output_url,
        "error": job.error[:500],
        "cost_usd": str(job.cost_usd),
        "run_seconds": job.run_seconds,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "completed_at": job.completed_at.isoformat() if job.completed_at else None,
        "logs_bytes": len(job.logs),
    }


def merged_progress(current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Progress moves forward only: a late event with a lower step changes nothing. Fields
    merge, so a checkpoint event keeps the step count. (Two deliveries for one job racing
    here may each drop the other's new fields until the next event: accepted, progress is
    advisory and every trainer event carries its full progress.)"""
    if not new:
        return current
    old_step, new_step = current.get("current"), new.get("current")
    if isinstance(old_step, int | float) and isinstance(new_step, int | float) and new_step < old_step:
        return current
    return {**current, **new}
