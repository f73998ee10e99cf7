"""The fair queue: jobs a `queue` quota holds, started when their owner has a free slot.

A queued job is `queued` with nothing at a provider and no start claim (governance.quotas
`queue_waiting`). A dispatch pass runs in one process at a time, the one holding the
`quota-queue` lease (the leader for that pass), and takes the waiting jobs in priority order:
the owner's role (admin, then lead, then researcher and below), oldest first within a role.
Each job whose owner has a free slot under every concurrent_jobs quota that queues or blocks
is claimed and started at its provider.

Exactly once: the claim is `UPDATE ... SET start_claimed_at = now WHERE id = ? AND status =
'queued' AND external_id = '' AND <no live claim>`, checked by its row count, so of two
processes racing for one job (two leaders after a lease expired under a slow pass, or a
kick and the periodic pass) one starts it. The owner's user row is locked (SELECT ... FOR
UPDATE) while the slot is counted and the job claimed, as submission does, so a submission
and a dispatch of one user count one after the other. A dispatcher that dies between its
claim and the provider leaves a claim that goes stale after SIMPLETUNER_SUBMIT_CLAIM_SECONDS,
and the job waits again (the accepted race of providers/submit.py: a start slower than that
setting may be started twice).

When: at the end of every background sync pass (providers.sync, every
SIMPLETUNER_SYNC_INTERVAL, in the process holding the sync lease), and at once when a job
ends in a process that runs the background loops (`queue_kick`, on commit of the terminal
transition, in a thread of its own: never on the request path). Accepted race: a job that
ends while another process is mid-pass finds the lease taken; if that pass already counted
the owner's slots, the freed slot is used at the next pass, at most one interval later.

Only the QUEUE_SCAN oldest waiting jobs are ordered in one pass (priority
within them); a longer queue is served over several passes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from audit.services import audit_record
from cloudops import audit_events as events
from cloudops.accounts import user_row_lock
from cloudops.auditing import Actor
from cloudops.structured_logging import correlation_scope, get_logger
from governance.models import QuotaAction, QuotaType
from governance.quotas import queue_waiting, quotas_for, user_usage
from governance.roles import role_of
from providers.events import job_event
from providers.models import Job
from providers.submit import job_start_queued
from providers.sync import background_sync_running, default_holder, lease_acquire, lease_release

logger = get_logger("simpletuner.cloud.governance.queue")

LEASE_NAME = "quota-queue"
QUEUE_SCAN = 500


@dataclass
class DispatchResult:
    ran: bool
    dispatched: list[str]


def queue_order(now: datetime) -> list[Job]:
    """The waiting jobs in dispatch order: owner's role (highest first), then oldest first."""
    waiting = Job.objects.filter(queue_waiting(now)).select_related("owner").order_by("created_at", "id")
    jobs = list(waiting[:QUEUE_SCAN])
    roles: dict[int, int] = {}
    for job in jobs:
        roles.setdefault(job.owner_id, int(role_of(job.owner)))
    return sorted(jobs, key=lambda job: (-roles[job.owner_id], job.created_at, job.pk))


def _free_slot(owner: User, now: datetime) -> bool:
    """Whether one more job of `owner` fits every concurrent_jobs quota that holds jobs back."""
    quotas = quotas_for(owner).filter(
        quota_type=QuotaType.CONCURRENT_JOBS, action__in=(QuotaAction.QUEUE, QuotaAction.BLOCK)
    )
    limits = [quota.limit for quota in quotas]
    if not limits:
        return True
    used = user_usage(owner, now, {QuotaType.CONCURRENT_JOBS})[QuotaType.CONCURRENT_JOBS]
    return used + 1 <= min(limits)


def queue_claim(job: Job, now: datetime, holder: str) -> bool | None:
    """Claim `job` for starting if its owner has a slot: True claimed, False no slot for
    its owner, None taken by someone else (cancelled, or dispatched by another process)."""
    with transaction.atomic():
        user_row_lock(job.owner_id)
        if not _free_slot(job.owner, now):
            return False
        if not Job.objects.filter(queue_waiting(now), pk=job.pk).update(start_claimed_at=now):
            return None
        job.start_claimed_at = now
        waited = round((now - job.created_at).total_seconds(), 3)
        audit_record(
            event_type=events.JOB_DISPATCHED,
            actor=Actor(username="system"),
            target_type="job",
            target_id=job.pk,
            action="dispatch",
            details={"holder": holder, "waited_seconds": waited},
        )
        job_event(kind=events.JOB_DISPATCHED, job=job)
    return True


def queue_dispatch(*, holder: str | None = None, now: datetime | None = None) -> DispatchResult:
    """One dispatch pass under the lease (see the module docstring); ran=False when another
    process holds it."""
    holder = holder or default_holder()
    now = now or timezone.now()
    if not lease_acquire(LEASE_NAME, holder, now=now):
        return DispatchResult(ran=False, dispatched=[])
    dispatched: list[str] = []
    try:
        full: set[int] = set()
        for job in queue_order(now):
            if job.owner_id in full:
                continue
            claimed = queue_claim(job, now, holder)
            if claimed is False:
                full.add(job.owner_id)
            elif claimed:
                job_start_queued(job=job)
                dispatched.append(job.pk)
                lease_acquire(LEASE_NAME, holder)
    finally:
        lease_release(LEASE_NAME, holder)
    if dispatched:
        logger.info("queued jobs dispatched", extra={"count": len(dispatched), "holder": holder})
    return DispatchResult(ran=True, dispatched=dispatched)


def _kicked_pass() -> None:
    try:
        with correlation_scope():
            queue_dispatch()
    except Exception:
        logger.exception("dispatching the quota queue after a job ended failed")
    finally:
        connection.close()


def queue_kick() -> None:
    """A job ended: run a dispatch pass now, in a thread, where the background loops run
    (elsewhere, e.g. with SIMPLETUNER_BACKGROUND_SYNC=false, the worker's next pass does)."""
    if background_sync_running():
        threading.Thread(target=_kicked_pass, name="quota-queue-kick", daemon=True).start()
