"""What a delivery costs the database, pinned so it cannot drift back (it was 13 statements
for a progress event: the provider's row, a DELETE of expired replay records, savepoints, a
second look for expired records after the commit).

A progress delivery: the replay record, the job's row read, its update and the live event,
in one transaction (plus its BEGIN and COMMIT: at most 6). A status change adds only its
audit entry. Counted once the provider's row is cached, as it is after a process's first
deliveries."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from providers.config import provider_config_get
from providers.models import Job, JobStatus
from tests.fakes.replicate import FakeReplicate
from tests.webhooks.deliveries import prediction

CONTROL = re.compile(r"\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b", re.I)
AUDIT_TABLES = ("audit_auditentry", "audit_audithead")


def statements(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries]


PRUNE = re.compile(r"\s*DELETE FROM [`\"]providers_liveevent[`\"]", re.I)


def work(sql: list[str]) -> list[str]:
    """The statements that read or write rows (transaction control left out: PostgreSQL and
    MySQL begin and commit through the driver, where no statement is captured), without the
    live-event buffer's prune: it runs on one event id in `PRUNE_EVERY`, whichever delivery
    draws it (the sequence is shared with every other test, so which one is not ours to pin)."""
    return [s for s in sql if not CONTROL.match(s) and not PRUNE.match(s)]


def deliver(post_webhook: Callable[..., Any], job: Job, event: dict[str, Any]) -> CaptureQueriesContext:
    with CaptureQueriesContext(connection) as queries:
        response = post_webhook("local", {**event, "job_id": job.pk})
    assert response.status_code == 200 and response.json()["updates"], response.content
    return queries


def progress(step: int) -> dict[str, Any]:
    return {"type": "training.progress", "data": {"step": step, "total_steps": 100}}


@pytest.mark.django_db(transaction=True)
def test_a_progress_delivery_is_four_statements_in_one_transaction(
    post_webhook: Callable[..., Any], local_job: Job
) -> None:
    Job.objects.filter(pk=local_job.pk).update(status=JobStatus.RUNNING)
    for step in (1, 2):  # the process's first deliveries read the provider's row and cache it
        deliver(post_webhook, local_job, progress(step))
    sql = statements(deliver(post_webhook, local_job, progress(3)))
    assert len(work(sql)) == 4, sql  # replay record, job read, job update, live event
    assert not [s for s in work(sql) if re.match(r"\s*(SAVEPOINT|DELETE)\b", s, re.I)], sql
    assert len([s for s in sql if PRUNE.match(s)]) <= 1, sql
    if connection.vendor == "sqlite":  # the one engine whose BEGIN and COMMIT are statements
        kept = [s for s in sql if not PRUNE.match(s)]
        assert len(kept) == 6 and kept[0].startswith("BEGIN") and kept[-1] == "COMMIT", sql


@pytest.mark.django_db(transaction=True)
def test_a_status_change_adds_only_its_audit_entry(post_webhook: Callable[..., Any], local_job: Job) -> None:
    Job.objects.filter(pk=local_job.pk).update(status=JobStatus.RUNNING)
    for step in (1, 2):
        deliver(post_webhook, local_job, progress(step))
    sql = work(
        statements(deliver(post_webhook, local_job, {"type": "training.status", "data": {"status": "completed"}}))
    )
    others = [s for s in sql if not any(table in s for table in AUDIT_TABLES)]
    # As progress (replay record, job read, job update, live event), and the read of the
    # notification channels that want `job.completed` (none here: no outbox row).
    assert len(others) == 5, sql
    assert len([s for s in others if "notifications_channel" in s]) == 1, sql
    assert len(sql) - len(others) <= 4, sql  # the audit head read and signed, the entry written


@pytest.mark.django_db(transaction=True)
def test_a_changed_provider_configuration_is_read_again(post_webhook: Callable[..., Any], local_job: Job) -> None:
    Job.objects.filter(pk=local_job.pk).update(status=JobStatus.RUNNING)
    for step in (1, 2):
        deliver(post_webhook, local_job, progress(step))
    config = provider_config_get("local")
    config.webhook_allowed_ips = ["192.0.2.0/24"]  # the deliveries come from 203.0.113.9
    config.save()
    response = post_webhook("local", {**progress(3), "job_id": local_job.pk})
    assert response.status_code == 403, response.content


@pytest.mark.django_db(transaction=True)
def test_a_replicate_log_flush_is_as_cheap(
    post_webhook: Callable[..., Any], replicate: FakeReplicate, replicate_job: Job
) -> None:
    def flush(logs: str) -> CaptureQueriesContext:
        with CaptureQueriesContext(connection) as queries:
            response = post_webhook("replicate", prediction("processing", logs=logs), secret=replicate.webhook_secret)
        assert response.status_code == 200 and response.json()["status"] == "received", response.content
        return queries

    for logs in ("step 1\n", "step 1\nstep 2\n"):  # the first: running, its audit entry, the secret cached
        flush(logs)
    sql = work(statements(flush("step 1\nstep 2\nstep 3\n")))
    assert len(sql) == 3, sql  # replay record, job read, job update (these logs carry no progress)
