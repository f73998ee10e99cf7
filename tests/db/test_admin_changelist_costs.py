"""The job and audit changelists never scan their table: no unbounded COUNT, no SELECT
DISTINCT over it (cloudops.admin_lists), and their filters still list and filter."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.services import audit_record
from cloudops.admin_lists import ADMIN_COUNT_CAP, distinct_values
from providers.models import Job, JobStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def jobs(alice: AbstractUser, bob: AbstractUser) -> list[Job]:
    return [
        Job.objects.create(owner=alice, provider="local", status=JobStatus.RUNNING, name="alice-run"),
        Job.objects.create(owner=alice, provider="replicate", status=JobStatus.COMPLETED, name="alice-done"),
        Job.objects.create(owner=bob, provider="local", status=JobStatus.FAILED, name="bob-fail"),
    ]


@pytest.fixture
def entries() -> None:
    audit_record(event_type="job.submitted", target_type="job", target_id="j1")
    audit_record(event_type="job.cancelled", target_type="job", target_id="j2")
    audit_record(event_type="rate_limited", target_type="ip", target_id="10.0.0.1")


def scans_of(table: str, queries: list[dict]) -> list[str]:
    """Statements reading the whole of `table`: a COUNT or a DISTINCT with no LIMIT."""
    quoted = re.compile(rf"""FROM [`"]?{table}[`"]?""")
    return [
        q["sql"]
        for q in queries
        if quoted.search(q["sql"]) and re.search(r"COUNT\(|DISTINCT", q["sql"]) and " LIMIT " not in q["sql"]
    ]


def get(client: Client, path: str) -> tuple[str, list[dict]]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode(), captured.captured_queries


def test_the_job_changelist_counts_no_more_than_its_cap(admin_client: Client, jobs: list[Job]) -> None:
    page, queries = get(admin_client, "/admin/providers/job/")
    assert scans_of("providers_job", queries) == []
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"] and "providers_job" in q["sql"]]
    assert counts and all(f"LIMIT {ADMIN_COUNT_CAP + 1}" in sql for sql in counts)
    assert all(job.name in page for job in jobs) and "3 jobs" in page


def test_the_job_changelist_filters_by_provider_and_owner(
    admin_client: Client, jobs: list[Job], alice: AbstractUser
) -> None:
    page, queries = get(admin_client, f"/admin/providers/job/?provider=local&owner__id__exact={alice.pk}")
    assert scans_of("providers_job", queries) == []
    assert "alice-run" in page and "alice-done" not in page and "bob-fail" not in page
    assert "provider=replicate" in page and "owner__id__exact" in page and ">bob<" in page


def test_the_audit_changelist_counts_no_more_than_its_cap(admin_client: Client, entries: None) -> None:
    page, queries = get(admin_client, "/admin/audit/auditentry/")
    assert scans_of("audit_auditentry", queries) == []
    assert "job.cancelled" in page and "rate_limited" in page


def test_the_audit_changelist_keeps_its_filters(admin_client: Client, entries: None) -> None:
    page, queries = get(admin_client, "/admin/audit/auditentry/?event_type=job.submitted&target_type=job")
    assert scans_of("audit_auditentry", queries) == []
    # As links: a bare "j2" turns up in a random CSRF token about once in sixty pages.
    assert ">j1</a>" in page and ">j2</a>" not in page
    assert "event_type=rate_limited" in page and "target_type=ip" in page
    page, _ = get(admin_client, "/admin/audit/auditentry/?timestamp__gte=2000-01-01+00%3A00%3A00%2B00%3A00")
    assert "j1" in page and "10.0.0.1" in page


def test_distinct_values_reads_each_value_once_in_order(jobs: list[Job], entries: None) -> None:
    assert distinct_values(Job, "provider") == ["local", "replicate"]
    assert len(distinct_values(Job, "owner_id")) == 2
    from audit.models import AuditEntry

    present = distinct_values(AuditEntry, "event_type")
    assert {"job.cancelled", "job.submitted", "rate_limited"} <= set(present) and present == sorted(present)
