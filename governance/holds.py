"""Recording a held submission: its approval request, audit entry and live event, written in
the transaction that records the job (providers.submit), so a held job never exists without
its request."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings

from audit.services import audit_record
from cloudops import audit_events as events
from cloudops import notify
from governance.models import ApprovalRequest
from governance.rules import Hold
from providers.events import job_event, job_notification_data
from providers.models import Job


def approval_event_data(approval: ApprovalRequest) -> dict[str, Any]:
    """What a live event and an audit entry say about a request."""
    return {
        "approval_id": approval.pk,
        "rule": approval.rule_name,
        "required_level": approval.required_level,
        "status": approval.status,
        "reason": approval.reason,
    }


def approval_request_create(*, job: Job, hold: Hold, now: datetime, audit: dict[str, Any]) -> ApprovalRequest:
    """The request for `job`, held by `hold`, expiring SIMPLETUNER_APPROVAL_TTL_HOURS from now.
    Call inside the job's transaction; `audit` carries the submission's request or actor."""
    approval = ApprovalRequest.objects.create(
        job=job,
        rule=hold.rule,
        rule_name=hold.rule.name,
        required_level=hold.rule.required_approver_level,
        reason=hold.reason,
        created_at=now,
        expires_at=now + timedelta(hours=settings.SIMPLETUNER_APPROVAL_TTL_HOURS),
    )
    data = approval_event_data(approval)
    audit_record(
        event_type=events.APPROVAL_REQUESTED,
        request=audit.get("request"),
        actor=audit.get("actor"),
        target_type="job",
        target_id=job.pk,
        action="hold",
        details=data,
    )
    job_event(kind=events.APPROVAL_REQUESTED, job=job, approval=data)
    notify.notify(notify.APPROVAL_REQUIRED, partial(job_notification_data, job, approval=data), owner_id=job.owner_id)
    return approval
