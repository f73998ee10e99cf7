"""Two leads approve the same request at the same moment: exactly one wins, and the job is
submitted to its provider exactly once. Real threads with their own database connections
(the row claim is a conditional UPDATE: the database decides, not the process)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import connection

from audit.models import AuditEntry
from governance.approvals import ApprovalConflict, approval_approve
from governance.models import ApprovalRequest, ApprovalRule
from providers.models import Job, JobStatus
from tests.conftest import client_for
from tests.governance.conftest import in_group
from tests.providers.helpers import QUICK, submit, wait_for_status

pytestmark = pytest.mark.django_db(transaction=True)

RACERS = 4


def test_concurrent_approvals_submit_the_job_once(alice: AbstractUser, make_user: Callable[..., AbstractUser]) -> None:
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer at a time: the racers would queue, not race")
    ApprovalRule.objects.create(name="local jobs", condition="provider", threshold="local")
    job_id = submit(client_for(alice), {"provider": "local", "config": QUICK}).json()["job_id"]
    leads = [in_group(make_user(f"lead{i}"), "lead") for i in range(RACERS)]
    barrier = threading.Barrier(RACERS)
    outcomes: list[str] = []

    def decide(lead: AbstractUser) -> None:
        try:
            approval = ApprovalRequest.objects.select_related("job", "job__owner").get(job_id=job_id)
            barrier.wait(timeout=30)
            approval_approve(approval=approval, user=lead)  # type: ignore[arg-type]
            outcomes.append("approved")
        except ApprovalConflict:
            outcomes.append("conflict")
        except Exception as exc:  # reported by the assertion below
            outcomes.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(lead,)) for lead in leads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["approved"] + ["conflict"] * (RACERS - 1)
    wait_for_status(job_id, JobStatus.RUNNING, JobStatus.COMPLETED)
    assert AuditEntry.objects.filter(event_type="approval.granted").count() == 1
    moves: list[Any] = [
        entry.details
        for entry in AuditEntry.objects.filter(event_type="job.status_changed", target_id=job_id)
        if entry.details["from"] == "pending_approval"
    ]
    assert len(moves) == 1
    assert Job.objects.get(pk=job_id).external_id
    assert ApprovalRequest.objects.get(job_id=job_id).status == "approved"
