from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.services import audit_record
from cloudops.auditing import Actor

pytestmark = pytest.mark.django_db


def seed(n: int, event_type: str = "job.submitted", **kwargs: object) -> None:
    for i in range(n):
        audit_record(event_type=event_type, actor=Actor(username="alice", ip="10.0.0.1"), target_id=str(i), **kwargs)


def test_staff_list_entries_newest_first_with_a_real_total(staff_client: APIClient) -> None:
    seed(5)
    body = staff_client.get("/api/audit?event_type=job.submitted&limit=2").json()
    assert body["total"] == 5
    assert [e["target_id"] for e in body["entries"]] == ["4", "3"]
    first = body["entries"][0]
    assert set(first) == {
        "sequence",
        "timestamp",
        "event_type",
        "actor",
        "target_type",
        "target_id",
        "action",
        "details",
    }
    assert first["actor"] == {"user": "alice", "api_key": None, "ip": "10.0.0.1"}


def test_an_offset_skips_entries_and_the_last_page_has_no_cursor(staff_client: APIClient) -> None:
    seed(5)
    body = staff_client.get("/api/audit?event_type=job.submitted&limit=2&offset=4").json()
    assert [e["target_id"] for e in body["entries"]] == ["0"]
    assert body["next_cursor"] is None


def test_cursor_paging_walks_every_entry_once_even_while_new_ones_arrive(staff_client: APIClient) -> None:
    seed(7)
    seen: list[str] = []
    url = "/api/audit?event_type=job.submitted&limit=3"
    body = staff_client.get(url).json()
    seen += [e["target_id"] for e in body["entries"]]
    seed(2, event_type="job.submitted")  # new entries must not shift the pages we still read
    while body["next_cursor"]:
        body = staff_client.get(f"{url}&cursor={body['next_cursor']}").json()
        seen += [e["target_id"] for e in body["entries"]]
    assert seen == ["6", "5", "4", "3", "2", "1", "0"]


def test_entries_filter_by_event_type_actor_and_target(staff_client: APIClient) -> None:
    seed(2)
    audit_record(
        event_type="webhook_rejected", actor=Actor(ip="203.0.113.9"), target_type="provider", target_id="replicate"
    )
    audit_record(
        event_type="api_key.created", actor=Actor(username="bob", api_key="sk_abcdefgh"), target_type="api_key"
    )
    get = lambda q: staff_client.get(f"/api/audit?{q}").json()  # noqa: E731
    assert get("event_type=webhook_rejected&limit=100")["total"] == 1
    assert get("actor=203.0.113.9")["entries"][0]["event_type"] == "webhook_rejected"
    assert get("actor=sk_abcdefgh")["entries"][0]["actor"]["user"] == "bob"
    assert get("actor=alice")["total"] == 2
    assert get("target_type=provider&target_id=replicate")["total"] == 1
    assert get("target_id=1")["total"] == 1


def test_since_and_until_bound_the_entries_in_time(staff_client: APIClient) -> None:
    seed(1)
    now = timezone.now()
    past = (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    future = (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    kind = {"event_type": "job.submitted"}
    assert staff_client.get("/api/audit", {**kind, "since": past}).json()["total"] == 1
    assert staff_client.get("/api/audit", {**kind, "since": future}).json()["total"] == 0
    assert staff_client.get("/api/audit", {**kind, "until": past}).json()["total"] == 0
    assert staff_client.get("/api/audit", {**kind, "since": past, "until": future}).json()["total"] == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("cursor=abc", "cursor"),
        ("since=yesterday", "since"),
        ("since=2024-02-01T00:00:00Z&until=2024-01-01T00:00:00Z", "until"),
        ("cursor=5&offset=5", "cursor"),
        ("evnt_type=typo", "evnt_type"),
    ],
)
def test_bad_query_parameters_are_400_naming_the_parameter(staff_client: APIClient, query: str, field: str) -> None:
    response = staff_client.get(f"/api/audit?{query}")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_it_needs_authentication(anon: APIClient) -> None:
    assert anon.get("/api/audit").status_code == 401


def test_it_is_staff_only(alice_client: APIClient) -> None:
    response = alice_client.get("/api/audit")
    assert response.status_code == 403
    assert response.json() == {"detail": "Staff status and the audit.view_auditentry permission are required."}


def test_it_is_read_only(staff_client: APIClient) -> None:
    assert staff_client.post("/api/audit", {}, format="json").status_code == 405
    assert staff_client.delete("/api/audit").status_code == 405
