from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.selectors import audit_totals
from audit.services import audit_record
from audit.verification import audit_verify
from tests.audit.conftest import T0

pytestmark = pytest.mark.django_db

STATS = "/api/audit/stats"


def record_at(clock: list[datetime], when: datetime, event_type: str) -> None:
    clock[0] = when
    audit_record(event_type=event_type)


def test_stats_count_totals_types_the_last_day_and_the_edges(clock: list[datetime], staff_client: APIClient) -> None:
    # The staff client's key was created at T0 (entry #1).
    record_at(clock, T0 + timedelta(days=1), "auth.login.failed")
    record_at(clock, T0 + timedelta(days=2), "auth.login.failed")
    record_at(clock, T0 + timedelta(days=2, hours=20), "job.submitted")
    clock[0] = T0 + timedelta(days=3)
    audit_verify(trigger="command")
    response = staff_client.get(STATS)
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 4
    assert body["last_24h"] == 2  # the login at day 2 and the job at day 2 + 20 h
    assert body["by_event_type"] == {"api_key.created": 1, "auth.login.failed": 2, "job.submitted": 1}
    assert body["oldest"] == {"sequence": 1, "timestamp": "2024-03-01T12:00:00Z"}
    assert body["newest"] == {"sequence": 4, "timestamp": "2024-03-04T08:00:00Z"}
    head = body["head"]
    assert (head["last_sequence"], head["anchor_sequence"], head["pruned_through"]) == (4, 0, 0)
    assert head["signature_valid"] is True and head["key_id"] == head["configured_key_id"]
    assert body["retention_days"] == 0
    assert body["last_verification"]["ok"] is True and body["last_verification"]["trigger"] == "command"


def test_an_empty_trail_has_empty_stats(clock: list[datetime], staff_client: APIClient) -> None:
    clock[0] = T0 + timedelta(days=5)
    body = staff_client.get(STATS).json()
    assert body["total"] == 1 and body["last_24h"] == 0  # only the staff key creation, days ago
    assert body["last_verification"] is None


def test_the_totals_for_metrics_take_two_cheap_queries_whatever_the_size(clock: list[datetime]) -> None:
    for i in range(30):
        record_at(clock, T0 + timedelta(hours=i), "job.status_changed")
    clock[0] = T0 + timedelta(hours=30)
    with CaptureQueriesContext(connection) as queries:
        totals = audit_totals()
    assert (totals.total, totals.last_24h) == (30, 24)
    assert len(queries) == 2
    assert all("COUNT(" not in q["sql"].upper() for q in queries)


def test_stats_need_authentication(anon: APIClient) -> None:
    response = anon.get(STATS)
    assert response.status_code == 401
    assert "detail" in response.json()


def test_stats_are_staff_only(alice_client: APIClient) -> None:
    response = alice_client.get(STATS)
    assert response.status_code == 403
    assert response.json() == {"detail": "Staff status and the audit.view_auditentry permission are required."}


def test_stats_refuse_unknown_parameters(staff_client: APIClient) -> None:
    response = staff_client.get(STATS, {"event_typ": "x"})
    assert response.status_code == 400
    assert "event_typ" in response.json()["errors"]


def test_stats_are_read_only(staff_client: APIClient) -> None:
    assert staff_client.post(STATS, {}, format="json").status_code == 405
