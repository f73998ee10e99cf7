"""A delivery reads the job's row once and writes it once, whatever it changes."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from providers.models import Job, JobStatus

JOB_TABLE = Job._meta.db_table
# The verb and the first table of a SELECT or UPDATE, quoted as any of the three databases quote it.
STATEMENT = re.compile(r'\s*(?P<verb>SELECT|UPDATE)\b(?:.*?\bFROM)?\s+[`"]?(?P<table>\w+)', re.I | re.S)


def job_row_queries(queries: CaptureQueriesContext) -> dict[str, int]:
    """How many SELECTs and UPDATEs of the job table the captured queries made."""
    counts = {"SELECT": 0, "UPDATE": 0}
    for query in queries.captured_queries:
        match = STATEMENT.match(query["sql"])
        if match and match["table"] == JOB_TABLE:
            counts[match["verb"].upper()] += 1
    return counts


DELIVERIES = {
    "a status change": (JobStatus.QUEUED, {"type": "training.status", "data": {"status": "running"}}),
    "progress": (JobStatus.RUNNING, {"type": "training.progress", "data": {"step": 5, "total_steps": 10}}),
    "the end": (JobStatus.RUNNING, {"type": "training.status", "data": {"status": "completed"}}),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("delivery", DELIVERIES, ids=list(DELIVERIES))
def test_a_delivery_reads_and_writes_the_job_row_once(
    post_webhook: Callable[..., Any], local_job: Job, delivery: str
) -> None:
    status, event = DELIVERIES[delivery]
    Job.objects.filter(pk=local_job.pk).update(status=status)
    with CaptureQueriesContext(connection) as queries:
        response = post_webhook("local", {**event, "job_id": local_job.pk})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "received"
    assert response.json()["updates"]  # the delivery changed the job...
    assert job_row_queries(queries) == {"SELECT": 1, "UPDATE": 1}  # ...in one read and one write
