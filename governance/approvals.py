"""Deciding held submissions: approve (the job goes to its provider), reject and expire (the
job is cancelled). The API, the admin's list actions and the expiry loop call these.

Every decision is a row claim: one `UPDATE ... SET status = <decision> WHERE id = ? AND
status = 'pending'`, checked by its row count, in the transaction that moves the job, audits
the decision and records its live event. Of two leads approving at the same moment, in one
process or two, exactly one UPDATE matches; the other gets 409 and nothing else happens. The
winner moves the job `pending_approval` -> `pending` with a fresh start claim and then starts
it at the provider: if its process dies in between, the job is an abandoned submission that
the background sync starts (providers/submit.py), still once.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.exceptions import APIException, PermissionDenied

from audit.services import audit_record
from cloudops import audit_events as events
from cloudops import notify
from cloudops.auditing import Actor
from cloudops.background import PeriodicThread
from cloudops.structured_logging import get_logger
from governance.holds import approval_event_data
from governance.models import ApprovalRequest, ApprovalStatus, ApproverLevel
from governance.roles import Role, role_of
from providers.events import job_event, job_notification_data
from providers.jobs import job_transition
from providers.models import JobStatus
from providers.submit import SubmitFailed, job_start_approved

logger = get_logger("simpletuner.cloud.governance")

EXPIRE_BATCH = 500
# The outbound notification of each decision's audit event.
APPROVAL_NOTIFICATIONS = {
    events.APPROVAL_GRANTED: notify.APPROVAL_GRANTED,
    events.APPROVAL_REJECTED: notify.APPROVAL_REJECTED,
    events.APPROVAL_EXPIRED: notify.APPROVAL_EXPIRED,
}
_LEVELS = {ApproverLevel.LEAD: Role.LEAD, ApproverLevel.ADMIN: Role.ADMIN}


class ApprovalConflict(APIException):
    status_code = 409
    default_code = "approval_conflict"


def decision_refusal(user: User, approval: ApprovalRequest) -> str | None:
    """Why `user` may not decide `approval` (None: they may): at or above the rule's level,
    and never their own submission."""
    if approval.job.owner_id == user.pk:
        return "You may not approve or reject your own submission."
    needed = _LEVELS.get(ApproverLevel(approval.required_level), Role.ADMIN)
    role = role_of(user)
    if role < needed:
        return f"Your role ({role.label}) may not decide this request; it needs the {needed.label} role or above."
    return None


def _claim(approval: ApprovalRequest, to: str, *, by: str, reason: str, now: datetime) -> None:
    """The row claim; raises ApprovalConflict when the request is no longer pending."""
    fields = {"status": to, "decided_at": now, "decided_by": by, "decision_reason": reason}
    if not ApprovalRequest.objects.filter(pk=approval.pk, status=ApprovalStatus.PENDING).update(**fields):
        approval.refresh_from_db()
        raise ApprovalConflict(f"Approval request {approval.pk} is already {approval.status}.")
    for name, value in fields.items():
        setattr(approval, name, value)


def _record(approval: ApprovalRequest, event_type: str, action: str, audit: dict[str, Any]) -> None:
    data = approval_event_data(approval)
    details = {**data, "decided_by": approval.decided_by, "decision_reason": approval.decision_reason}
    audit_record(
        event_type=event_type, target_type="job", target_id=approval.job_id, action=action, details=details, **audit
    )
    job_event(kind=event_type, job=approval.job, approval=data)
    job = approval.job
    notify.notify(
        APPROVAL_NOTIFICATIONS[event_type], partial(job_notification_data, job, approval=details), owner_id=job.owner_id
    )


def _who(user: User | None, request: HttpRequest | None) -> tuple[str, dict[str, Any]]:
    """The decider's name and the audit's request/actor arguments."""
    if request is not None:
        return Actor.from_request(request).username, {"request": request}
    name = user.get_username() if user is not None else "system"
    return name, {"actor": Actor(username=name)}


def approval_approve(
    *, approval: ApprovalRequest, user: User, reason: str = "", request: HttpRequest | None = None
) -> ApprovalRequest:
    """Grant the request and submit the job to its provider (exactly once). A provider that
    refuses the job fails it, as at submission; the approval stands."""
    refusal = decision_refusal(user, approval)
    if refusal:
        raise PermissionDenied(refusal)
    name, audit = _who(user, request)
    now = timezone.now()
    job = approval.job
    with transaction.atomic():
        _claim(approval, ApprovalStatus.APPROVED, by=name, reason=reason, now=now)
        moved = job_transition(
            job=job,
            to=JobStatus.PENDING,
            reason=f"approved by {name}",
            source="approval",
            fields={"start_claimed_at": now},
            now=now,
            **audit,
        )
        if not moved:  # cancelled by its owner meanwhile: undo the claim with the transaction
            raise ApprovalConflict(f"Job {job.pk} is already {job.status}; it cannot be approved.")
        _record(approval, events.APPROVAL_GRANTED, "approve", audit)
    logger.info("approval granted", extra={"job_id": job.pk, "by": name})
    with contextlib.suppress(SubmitFailed):  # recorded on the job (failed, with the reason)
        job_start_approved(job=job)
    return approval


def _cancel_held(approval: ApprovalRequest, why: str, audit: dict[str, Any], now: datetime) -> None:
    """Cancel the held job with `why` as its error (it never reached a provider)."""
    job_transition(
        job=approval.job,
        to=JobStatus.CANCELLED,
        reason=why[:500],
        source="approval",
        fields={"error": why},
        now=now,
        **audit,
    )


def approval_reject(
    *, approval: ApprovalRequest, user: User, reason: str = "", request: HttpRequest | None = None
) -> ApprovalRequest:
    """Refuse the request; the job is cancelled with the reason."""
    refusal = decision_refusal(user, approval)
    if refusal:
        raise PermissionDenied(refusal)
    name, audit = _who(user, request)
    now = timezone.now()
    with transaction.atomic():
        _claim(approval, ApprovalStatus.REJECTED, by=name, reason=reason, now=now)
        why = f"Rejected by {name}" + (f": {reason}" if reason else ".")
        _cancel_held(approval, why, audit, now)
        _record(approval, events.APPROVAL_REJECTED, "reject", audit)
    logger.info("approval rejected", extra={"job_id": approval.job_id, "by": name})
    return approval


def approvals_expire(*, now: datetime | None = None) -> int:
    """Expire the pending requests older than SIMPLETUNER_APPROVAL_TTL_HOURS (their
    `expires_at`) and cancel their jobs; returns how many. Safe in every process at once: each
    request is claimed by one of them."""
    now = now or timezone.now()
    due = ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING, expires_at__lte=now)
    expired = 0
    for approval in due.select_related("job").order_by("expires_at")[:EXPIRE_BATCH]:
        audit: dict[str, Any] = {"actor": Actor(username="system")}
        try:
            with transaction.atomic():
                _claim(approval, ApprovalStatus.EXPIRED, by="system", reason="no decision in time", now=now)
                why = f"Approval expired: nobody decided within {approval.expires_at - approval.created_at}."
                _cancel_held(approval, why, audit, now)
                _record(approval, events.APPROVAL_EXPIRED, "expire", audit)
        except ApprovalConflict:
            continue  # decided or expired by someone else meanwhile
        expired += 1
    if expired:
        logger.info("approval requests expired", extra={"count": expired})
    return expired


# --- The in-process loop ------------------------------------------------------------------------

_thread = PeriodicThread(
    "approvals-expiry", approvals_expire, lambda: settings.SIMPLETUNER_SYNC_INTERVAL, wait_first=True
)


def start_approval_expiry() -> bool:
    """Start this process's expiry loop once, every SIMPLETUNER_SYNC_INTERVAL seconds, where the
    background sync runs (SIMPLETUNER_BACKGROUND_SYNC). Every server process may run it: each
    request is claimed once."""
    return bool(settings.SIMPLETUNER_BACKGROUND_SYNC and _thread.start())
