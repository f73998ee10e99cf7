"""Job services: the one status-transition function, provider state, cancel, logs (submission
is providers/submit.py).

The API, the admin, the background sync, the local runner's watcher and (later) the webhook
endpoint all change jobs through these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.exceptions import APIException

from audit.services import audit_record
from cloudops import audit_events as events
from cloudops import notify
from cloudops.auditing import Actor
from cloudops.jsonbody import storable_text
from cloudops.structured_logging import LogContext, get_logger
from providers.base import RemoteState
from providers.config import provider_config_get
from providers.costs import job_cost
from providers.errors import ProviderError
from providers.events import job_event, job_notification_data
from providers.models import ACTIVE_STATUSES, STATUS_RANK, TERMINAL_STATUSES, Job, JobStatus, ProviderConfig
from providers.registry import get_provider

logger = get_logger("simpletuner.cloud.jobs")

# The outbound notification each status sends (docs/notifications.md); the others send none.
STATUS_NOTIFICATIONS: dict[str, str] = {
    JobStatus.RUNNING: notify.JOB_STARTED,
    JobStatus.COMPLETED: notify.JOB_COMPLETED,
    JobStatus.FAILED: notify.JOB_FAILED,
    JobStatus.CANCELLED: notify.JOB_CANCELLED,
}

# A cancel still unfinished after this long (its process died) no longer blocks a new one.
CANCEL_CLAIM_SECONDS = 60


class JobConflict(APIException):
    status_code = 409
    default_code = "job_conflict"


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

    Compare-and-set: one UPDATE ... WHERE status = <the caller's job.status>, checked by its
    row count, with the `job.status_changed` audit entry in the same transaction. Statuses
    only move to a higher rank (providers.models.STATUS_RANK) and terminal ones never change,
    so late or out-of-order events are ignored. `fields` are written in the same UPDATE and
    set on `job`; a lost race re-reads the row and tries again from there. The caller's copy
    is never ahead of the database (statuses only move forward), so a move it already shows
    as backward is refused without a query.
    """
    now = now or timezone.now()
    for _ in range(len(STATUS_RANK)):  # each lost race means the job moved forward: bounded
        if job.status in TERMINAL_STATUSES or STATUS_RANK[to] <= STATUS_RANK[job.status]:
            return False
        if _compare_and_set(job=job, to=to, fields=fields or {}, now=now, audit=(reason, source, request, actor)):
            return True
        if not _reread(job):
            return False
    return False


def _reread(job: Job) -> bool:
    """Bring the caller's copy up to date after a write it lost; False if the job is gone."""
    try:
        job.refresh_from_db()
    except Job.DoesNotExist:
        return False
    return True


def _compare_and_set(
    *,
    job: Job,
    to: str,
    fields: dict[str, Any],
    now: datetime,
    audit: tuple[str, str, HttpRequest | None, Actor | None],
) -> bool:
    """One attempt of job_transition: the UPDATE from job.status, and on success the audit
    entry and the live event in its transaction and the new values on `job`."""
    previous = job.status
    updates: dict[str, Any] = {"status": to, "updated_at": now, **fields}
    # A provider-reported time in `fields` wins over the time we heard of the change.
    if to == JobStatus.RUNNING and job.started_at is None:
        updates.setdefault("started_at", now)
    if to in TERMINAL_STATUSES:
        updates.setdefault("completed_at", now)
    reason, source, request, actor = audit
    # No savepoint: nothing here recovers from an error, which rolls back the whole
    # transaction (a caller's too: a delivery's replay record goes with it).
    with transaction.atomic(savepoint=False):
        if not Job.objects.filter(pk=job.pk, status=previous).update(**updates):
            return False
        for name, value in updates.items():
            setattr(job, name, value)
        audit_record(
            event_type=events.JOB_STATUS_CHANGED,
            request=request,
            actor=actor,
            target_type="job",
            target_id=job.pk,
            action=to,
            details={"from": previous, "to": to, "reason": reason[:500], "source": source},
        )
        # Every status change passes here once: the place to record job events (SSE), in
        # the transaction of the change.
        job_event(kind="job.status", job=job, previous_status=previous)
        # And the outbox rows of outbound notifications, in the same transaction.
        if to in STATUS_NOTIFICATIONS:
            data = partial(job_notification_data, job, previous_status=previous)
            notify.notify(STATUS_NOTIFICATIONS[to], data, owner_id=job.owner_id)
        if to in TERMINAL_STATUSES:
            transaction.on_commit(_slot_freed)
    logger.info("job status changed", extra={"job_id": job.pk, "from": previous, "to": to, "source": source})
    return True


def _slot_freed() -> None:
    """A job ended: the quota queue may start a waiting job now (governance.queue; imported
    here because governance imports this module)."""
    from governance.queue import queue_kick

    queue_kick()


def cap_logs(text: str) -> str:
    """The last SIMPLETUNER_JOB_LOG_MAX_BYTES of a log (the end is what explains a failure)."""
    limit = settings.SIMPLETUNER_JOB_LOG_MAX_BYTES
    return storable_text(text if len(text) <= limit else text[-limit:])


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
        fields["output_url"] = storable_text(remote.output_url[:2048])
    if remote.external_id and not job.external_id:
        fields["external_id"] = storable_text(remote.external_id[:128])
    if remote.status in TERMINAL_STATUSES and remote.run_seconds is not None:
        provider_config = provider_config or provider_config_get(job.provider)
        fields["run_seconds"] = remote.run_seconds
        fields["cost_usd"] = job_cost(job=job, run_seconds=remote.run_seconds, provider_config=provider_config)
    if remote.status == JobStatus.FAILED and remote.error:
        fields["error"] = storable_text(remote.error[:10000])
    if remote.started_at is not None and job.started_at is None:
        fields["started_at"] = remote.started_at
    if remote.completed_at is not None and remote.status in TERMINAL_STATUSES:
        fields["completed_at"] = remote.completed_at
    if remote.status and job_transition(
        job=job, to=remote.status, reason=f"{job.provider} reported {remote.status}", source=source, fields=fields
    ):
        if job.is_terminal:
            config = provider_config or provider_config_get(job.provider)
            transaction.on_commit(partial(get_provider(job.provider).ended, job=job, provider_config=config))
        return True
    if "run_seconds" in fields and job.is_terminal and job.run_seconds is None:
        _record_run_time(job=job, run_seconds=fields["run_seconds"], cost_usd=fields["cost_usd"])
        return False
    activity = {k: v for k, v in fields.items() if k in ("last_synced_at", "logs", "progress", "output_url")}
    activity["updated_at"] = now
    progressed = bool(remote.progress) and remote.progress != job.progress
    with transaction.atomic(savepoint=False):  # as in _compare_and_set
        updated = Job.objects.filter(pk=job.pk, status__in=ACTIVE_STATUSES).update(**activity)
        if updated:
            for name, value in activity.items():
                setattr(job, name, value)
            if progressed:
                job_event(kind="job.progress", job=job)
    if not updated:
        _reread(job)  # it ended meanwhile: the caller sees how
    return False


def _record_run_time(*, job: Job, run_seconds: float, cost_usd: Any) -> None:
    """The run time (and its cost) of a job that ended before its process did: a local job
    reported `completed` by its own webhook, or cancelled, whose runner exits afterwards.
    Recorded once (only while none is), and never changes the status."""
    recorded = Job.objects.filter(pk=job.pk, status__in=TERMINAL_STATUSES, run_seconds__isnull=True).update(
        run_seconds=run_seconds, cost_usd=cost_usd
    )
    if recorded:
        job.run_seconds, job.cost_usd = run_seconds, cost_usd
        logger.info("job run time recorded", extra={"job_id": job.pk, "run_seconds": run_seconds})


def job_refresh(*, job: Job, source: str = "sync") -> bool:
    """Ask the provider for the job's state and record it (sync, local watcher, logs)."""
    provider_config = provider_config_get(job.provider)
    with LogContext(job_id=job.pk, provider=job.provider):
        remote = get_provider(job.provider).poll(job=job, provider_config=provider_config)
        return job_apply_remote(job=job, remote=remote, source=source, provider_config=provider_config)


# --- Cancel and logs -------------------------------------------------------------------------------


def _claim_cancel(job: Job) -> datetime | None:
    """Mark the cancel as requested, unless another cancel holds the mark; returns the mark.

    Of several cancels at once, the one whose conditional UPDATE sets the mark proceeds; the
    others find it set. A mark older than CANCEL_CLAIM_SECONDS is taken over: its canceller
    died before finishing (a provider call that fails gives its mark back at once)."""
    now = timezone.now()
    free = Q(cancel_requested_at__isnull=True) | Q(
        cancel_requested_at__lt=now - timedelta(seconds=CANCEL_CLAIM_SECONDS)
    )
    claimed = Job.objects.filter(free, pk=job.pk, status__in=ACTIVE_STATUSES).update(cancel_requested_at=now)
    return now if claimed else None


def job_cancel(*, job: Job, request: HttpRequest | None = None, actor: Actor | None = None) -> Job:
    """Stop the job at the provider and mark it cancelled. A terminal job, or one another
    cancel is already stopping, is a JobConflict: one cancel wins, and only it is audited."""
    claimed_at = _claim_cancel(job)
    if claimed_at is None:
        job.refresh_from_db()
        raise JobConflict(f"Job {job.pk} is already {job.status if job.is_terminal else 'being cancelled'}.")
    who = actor or Actor.from_request(request)
    provider_config = provider_config_get(job.provider)
    with LogContext(job_id=job.pk, provider=job.provider):
        try:
            # A job held for approval, or waiting in the quota queue, was never sent to the
            # provider: nothing to stop there.
            held = job.status == JobStatus.PENDING_APPROVAL or (job.status == JobStatus.QUEUED and not job.external_id)
            remote = None if held else get_provider(job.provider).cancel(job=job, provider_config=provider_config)
        except ProviderError:
            # Give the mark back, so the owner can try again now rather than in a minute.
            Job.objects.filter(pk=job.pk, cancel_requested_at=claimed_at).update(cancel_requested_at=None)
            raise
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
    client = get_provider(job.provider)
    if job.status != JobStatus.PENDING_APPROVAL and (not job.is_terminal or client.logs_after_end):
        try:
            fresh = client.logs(job=job, provider_config=provider_config_get(job.provider))
        except ProviderError as exc:
            logger.warning("could not fetch logs from the provider", extra={"job_id": job.pk, "error": exc.message})
    if fresh is None:
        return JobLogs(text=job.logs, truncated=len(job.logs) >= limit, source="stored")
    if not job.is_terminal:
        Job.objects.filter(pk=job.pk, status__in=ACTIVE_STATUSES).update(logs=cap_logs(fresh))
    return JobLogs(text=cap_logs(fresh), truncated=len(fresh) >= limit, source="provider")
