"""Background sync: poll active jobs whose status has not been pushed for a while.

Webhooks are the first source of status; this is the fallback. One pass runs in exactly one
process at a time, under a lease row in the database (renewed after every job, so a slow
pass never overlaps another process's). It never runs on the request path: the served
process starts `start_background_sync()` from cloudops/asgi.py (a daemon thread), and
`manage.py sync_jobs` runs one pass (or `--loop`) for cron or a dedicated worker.
"""

from __future__ import annotations

import os
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from cloudops.background import PeriodicThread
from cloudops.structured_logging import LogContext, correlation_scope, get_logger
from providers.errors import CircuitOpenError, ProviderError
from providers.jobs import job_refresh, job_transition
from providers.models import ACTIVE_STATUSES, TERMINAL_STATUSES, Job, JobStatus, Lease
from providers.webhooks.apply import webhook_prune_all

logger = get_logger("simpletuner.cloud.jobs.sync")

LEASE_NAME = "jobs-sync"
MAX_JOBS_PER_PASS = 500


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _lease_ttl() -> timedelta:
    """Two sync intervals: a holder that died is taken over by the next pass after that.

    The holder renews the lease after every job. Accepted race: one provider call slower than
    the whole TTL (its timeout times its retries) lets another process start a pass meanwhile,
    and both may poll the same job once; recording a poll is a forward-only compare-and-set
    (job_transition), so the double poll changes nothing but the provider's request count.
    """
    return timedelta(seconds=2 * settings.SIMPLETUNER_SYNC_INTERVAL)


def lease_acquire(name: str, holder: str, *, now: datetime | None = None) -> bool:
    """Take or renew the lease; False while another holder's lease is unexpired."""
    now = now or timezone.now()
    expires = now + _lease_ttl()
    taken = Lease.objects.filter(Q(holder=holder) | Q(expires_at__lt=now), name=name).update(
        holder=holder, expires_at=expires
    )
    if taken:
        return True
    try:
        with transaction.atomic():
            Lease.objects.create(name=name, holder=holder, expires_at=expires)
    except IntegrityError:
        return False
    return True


def lease_release(name: str, holder: str) -> None:
    Lease.objects.filter(name=name, holder=holder).delete()


@dataclass
class SyncResult:
    ran: bool
    holder: str = ""
    checked: int = 0
    changed: Counter[str] = field(default_factory=Counter)
    errors: int = 0

    def summary(self) -> str:
        if not self.ran:
            return f"another process holds the sync lease ({self.holder}); nothing done"
        moved = ", ".join(f"{count} {status}" for status, count in sorted(self.changed.items())) or "no changes"
        return f"checked {self.checked} jobs: {moved}; {self.errors} errors"


def _due_jobs(now: datetime) -> list[Job]:
    """Active jobs to poll: local ones every pass (a cheap process check), others once their
    last word from the provider is older than SIMPLETUNER_SYNC_STALE_SECONDS."""
    stale_before = now - timedelta(seconds=settings.SIMPLETUNER_SYNC_STALE_SECONDS)
    due = Q(provider="local") | Q(last_synced_at__isnull=True) | Q(last_synced_at__lt=stale_before)
    # No external id: nothing was started at the provider yet, so there is nothing to poll.
    jobs = Job.objects.filter(due, status__in=ACTIVE_STATUSES).exclude(external_id="")
    return list(jobs.order_by(F("last_synced_at").asc(nulls_first=True))[:MAX_JOBS_PER_PASS])


def _fail_abandoned_submissions(now: datetime, result: SyncResult) -> None:
    """Jobs still `pending`/`uploading` with nothing at the provider long after submission: the process
    submitting them died in between."""
    cutoff = now - timedelta(seconds=settings.SIMPLETUNER_SUBMIT_TIMEOUT)
    for job in Job.objects.filter(
        status__in=(JobStatus.PENDING, JobStatus.UPLOADING), external_id="", created_at__lt=cutoff
    ):
        reason = "The submission never reached the provider (the server stopped during submission?)."
        if job_transition(
            job=job, to=JobStatus.FAILED, reason="submission abandoned", source="sync", fields={"error": reason}
        ):
            result.changed[JobStatus.FAILED] += 1


def _start_abandoned_submissions(now: datetime, result: SyncResult) -> None:
    """Jobs recorded whose starter died before reaching the provider, and not yet abandoned
    for good: started now (providers/submit.py claims each, so one process starts it)."""
    # Imported here: submit imports this module, to have the jobs it starts watched.
    from providers.submit import abandoned_submissions, job_start_abandoned

    cutoff = now - timedelta(seconds=settings.SIMPLETUNER_SUBMIT_TIMEOUT)
    for job in abandoned_submissions():
        if job.created_at >= cutoff and job_start_abandoned(job=job):
            result.changed["started"] += 1


def _kill_lingering_cancelled(now: datetime) -> None:
    """Cancelled local jobs that ignored SIGTERM past the grace period (e.g. their server
    restarted before its SIGKILL timer fired)."""
    from providers.local import kill_if_alive

    grace = timedelta(seconds=settings.SIMPLETUNER_LOCAL_CANCEL_GRACE)
    recent = Job.objects.filter(
        provider="local",
        status=JobStatus.CANCELLED,
        cancel_requested_at__lt=now - grace,
        cancel_requested_at__gt=now - timedelta(days=1),
    )
    for job in recent.exclude(external_id=""):
        if job.runner.get("host") in (None, socket.gethostname()):
            kill_if_alive(job.runner)


def _record_local_run_times(now: datetime) -> None:
    """Local jobs of this host that ended (their own webhook, a cancel) before their process
    did, and whose run time no watcher recorded (this server restarted meanwhile): recorded
    from the exit status the runner left, once it is there."""
    from pathlib import Path

    from providers.local import runner_alive

    ended = Job.objects.filter(
        provider="local",
        status__in=TERMINAL_STATUSES,
        run_seconds__isnull=True,
        completed_at__gt=now - timedelta(days=1),
    ).exclude(external_id="")
    for job in ended[:MAX_JOBS_PER_PASS]:
        runner = job.runner
        mine = runner.get("host") in (None, socket.gethostname()) and runner.get("dir")
        # Without an exit status only a cancel says when it ended (providers.local poll).
        knowable = job.cancel_requested_at is not None or (Path(runner["dir"]) / "exit.json").exists()
        if mine and knowable and not runner_alive(runner):
            job_refresh(job=job, source="sync")


def jobs_sync(*, holder: str | None = None, now: datetime | None = None) -> SyncResult:
    """One pass, under the lease. Safe to run from several processes at once: all but one
    return at once with ran=False."""
    holder = holder or default_holder()
    now = now or timezone.now()
    if not lease_acquire(LEASE_NAME, holder, now=now):
        current = Lease.objects.filter(name=LEASE_NAME).first()
        return SyncResult(ran=False, holder=current.holder if current else "")
    result = SyncResult(ran=True, holder=holder)
    try:
        _sync_jobs(now, result, holder)
        _fail_abandoned_submissions(now, result)
        _start_abandoned_submissions(now, result)
        _kill_lingering_cancelled(now)
        _record_local_run_times(now)
        webhook_prune_all(now)
    finally:
        lease_release(LEASE_NAME, holder)
    _dispatch_queue(result)
    if result.checked or result.changed:
        logger.info("sync pass done", extra={"checked": result.checked, "changed": dict(result.changed)})
    return result


def _dispatch_queue(result: SyncResult) -> None:
    """Start the quota queue's jobs whose owners have a slot (governance.queue, under its own
    lease): at least once every sync interval, whatever job ends set off."""
    # Imported here: governance.queue imports this module (its lease).
    from governance.queue import queue_dispatch

    dispatched = queue_dispatch().dispatched
    if dispatched:
        result.changed["dispatched"] += len(dispatched)


def _sync_jobs(now: datetime, result: SyncResult, holder: str) -> None:
    broken: set[str] = set()
    for job in _due_jobs(now):
        if job.provider in broken:
            continue
        result.checked += 1
        try:
            if job_refresh(job=job, source="sync"):
                result.changed[job.status] += 1
        except CircuitOpenError:
            broken.add(job.provider)
            result.errors += 1
        except ProviderError as exc:
            result.errors += 1
            logger.warning("sync could not poll a job", extra={"job_id": job.pk, "error": exc.message})
        if not lease_acquire(LEASE_NAME, holder):
            logger.warning("sync lease lost mid-pass; stopping", extra={"holder": holder})
            return


# --- Watching a job that runs here ------------------------------------------------------------------


def job_watch(*, job_id: str, wait: Callable[[], object], source: str) -> None:
    """Record the end of a job that runs in this process's care (a local job's runner) the
    moment `wait()` returns, instead of at the next sync pass (the fallback for runners this
    process did not start, e.g. after a restart)."""

    def watch() -> None:
        wait()
        try:
            with correlation_scope(), LogContext(job_id=job_id):
                job = Job.objects.filter(pk=job_id).first()
                # A job already ended (its own webhook, a cancel) still gets its run time.
                if job is not None and (not job.is_terminal or job.run_seconds is None):
                    job_refresh(job=job, source=source)
        except Exception:
            logger.exception("could not record the end of a job", extra={"job_id": job_id})
        finally:
            connection.close()

    threading.Thread(target=watch, name=f"job-watch-{job_id}", daemon=True).start()


# --- The in-process loop ------------------------------------------------------------------------

_thread = PeriodicThread("jobs-sync", jobs_sync, lambda: settings.SIMPLETUNER_SYNC_INTERVAL, wait_first=False)


def start_background_sync() -> bool:
    """Start this process's sync thread once (a no-op when disabled or already running)."""
    if not settings.SIMPLETUNER_BACKGROUND_SYNC or not _thread.start():
        return False
    logger.info("background job sync started", extra={"interval_s": settings.SIMPLETUNER_SYNC_INTERVAL})
    return True


def background_sync_running() -> bool:
    """Whether this process runs the background loops (a served process, not a test or a
    one-off command)."""
    return _thread.state().alive and not _thread.stopped


def stop_background_sync(timeout: float = 10) -> None:
    _thread.stop(timeout)
