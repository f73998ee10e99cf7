"""/api/quotas/: admins set quotas (checked, audited); everyone reads their own limits and usage."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser, Group
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEntry
from governance.models import Quota
from providers.models import Job, JobStatus
from tests.governance.conftest import in_group

pytestmark = pytest.mark.django_db


def post(client: APIClient, **body: Any) -> Any:
    return client.post("/api/quotas/", body, format="json")


def test_an_admin_creates_reads_changes_and_deletes_a_quota(staff_client: APIClient, alice: AbstractUser) -> None:
    created = post(staff_client, scope="user", target="alice", quota_type="concurrent_jobs", limit=2, action="queue")
    assert created.status_code == 201, created.json()
    quota = created.json()["quota"]
    assert {k: quota[k] for k in ("scope", "target", "quota_type", "limit", "action", "updated_by")} == {
        "scope": "user",
        "target": "alice",
        "quota_type": "concurrent_jobs",
        "limit": 2.0,
        "action": "queue",
        "updated_by": "olivia",
    }
    url = f"/api/quotas/{quota['id']}"
    assert staff_client.get(url).json()["quota"]["limit"] == 2.0
    changed = staff_client.patch(url, {"limit": 3}, format="json")
    assert changed.status_code == 200, changed.json()
    assert Quota.objects.get(pk=quota["id"]).limit == Decimal("3")
    assert staff_client.delete(url).status_code == 204
    assert not Quota.objects.exists()
    trail = AuditEntry.objects.filter(target_type="quota").order_by("sequence")
    assert [(e.event_type, e.action) for e in trail] == [
        ("config.changed", "create"),
        ("config.changed", "update"),
        ("config.changed", "delete"),
    ]
    assert trail[1].details["before"]["limit"] == 2


def test_the_path_without_a_slash_lists_too(staff_client: APIClient) -> None:
    assert staff_client.get("/api/quotas").status_code == 200


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"scope": "global", "target": "alice", "quota_type": "jobs_per_day", "limit": 5}, "target", "no target"),
        ({"scope": "user", "target": "nobody", "quota_type": "jobs_per_day", "limit": 5}, "target", "no user named"),
        ({"scope": "group", "target": "ghosts", "quota_type": "jobs_per_day", "limit": 5}, "target", "no group"),
        ({"scope": "user", "quota_type": "jobs_per_day", "limit": 5}, "target", "needs a target"),
        ({"scope": "global", "quota_type": "jobs_per_day", "limit": 5, "action": "queue"}, "action", "concurrent"),
        ({"scope": "global", "quota_type": "jobs_per_day", "limit": -1}, "limit", "greater than or equal"),
        ({"scope": "global", "quota_type": "jobs_per_day", "limit": 1.5}, "limit", "whole number"),
        ({"scope": "global", "quota_type": "jobs_per_day", "limit": "5"}, "limit", "valid number"),
        ({"scope": "team", "quota_type": "jobs_per_day", "limit": 5}, "scope", "not a valid choice"),
        ({"scope": "global", "quota_type": "gpus", "limit": 5}, "quota_type", "not a valid choice"),
        ({"scope": "global", "quota_type": "jobs_per_day", "limit": 5, "action": "yell"}, "action", "valid choice"),
        ({"scope": "global", "quota_type": "jobs_per_day", "limit": 5, "colour": "red"}, "colour", "Unknown"),
        ({"scope": "global", "quota_type": "jobs_per_day"}, "limit", "required"),
    ],
)
def test_a_bad_quota_is_a_400_naming_the_field(
    staff_client: APIClient, alice: AbstractUser, body: dict[str, Any], field: str, words: str
) -> None:
    response = post(staff_client, **body)
    assert response.status_code == 400, response.json()
    assert words in " ".join(response.json()["errors"][field])
    assert not Quota.objects.exists()


def test_a_second_quota_for_the_same_scope_target_and_type_is_a_400(staff_client: APIClient) -> None:
    assert post(staff_client, scope="global", quota_type="jobs_per_day", limit=5).status_code == 201
    response = post(staff_client, scope="global", quota_type="jobs_per_day", limit=6)
    assert response.status_code == 400
    assert "exists already" in response.json()["errors"]["quota_type"][0]


def test_a_group_or_user_quota_above_the_global_one_is_refused(staff_client: APIClient, alice: AbstractUser) -> None:
    Group.objects.create(name="vision")
    assert post(staff_client, scope="global", quota_type="monthly_spend_usd", limit=100).status_code == 201
    for scope, target in (("group", "vision"), ("user", "alice")):
        response = post(staff_client, scope=scope, target=target, quota_type="monthly_spend_usd", limit=150)
        assert response.status_code == 400
        assert "above the global monthly_spend_usd quota (100.00)" in response.json()["errors"]["limit"][0]
        assert (
            post(staff_client, scope=scope, target=target, quota_type="monthly_spend_usd", limit=100).status_code == 201
        )
    user_quota = Quota.objects.get(scope="user")
    raised = staff_client.patch(f"/api/quotas/{user_quota.pk}", {"limit": 101}, format="json")
    assert raised.status_code == 400 and "ceiling" in raised.json()["detail"]


def test_the_ceiling_message_prints_job_counts_as_whole_numbers(staff_client: APIClient, alice: AbstractUser) -> None:
    assert post(staff_client, scope="global", quota_type="concurrent_jobs", limit=2).status_code == 201
    response = post(staff_client, scope="user", target="alice", quota_type="concurrent_jobs", limit=3)
    assert response.status_code == 400
    assert response.json()["errors"]["limit"][0].startswith("3 is above the global concurrent_jobs quota (2), ")


def test_count_limits_and_usage_are_listed_as_integers(alice: AbstractUser, alice_client: APIClient) -> None:
    Quota.objects.create(scope="global", quota_type="concurrent_jobs", limit=2)
    Quota.objects.create(scope="global", quota_type="monthly_spend_usd", limit=Decimal("7.5"))
    Job.objects.create(owner=alice, provider="local", status=JobStatus.RUNNING, external_id="1")
    body = alice_client.get("/api/quotas/").json()
    limits = {q["quota_type"]: q["limit"] for q in body["quotas"]}
    effective = {row["quota_type"]: row for row in body["effective"]}
    # 2 == 2.0 in Python: the type is what tells "2" from "2.0" in the JSON.
    assert type(limits["concurrent_jobs"]) is int and limits["concurrent_jobs"] == 2
    assert type(effective["concurrent_jobs"]["limit"]) is int and effective["concurrent_jobs"]["limit"] == 2
    assert type(effective["concurrent_jobs"]["usage"]) is int and effective["concurrent_jobs"]["usage"] == 1
    assert type(effective["jobs_per_day"]["usage"]) is int
    assert limits["monthly_spend_usd"] == 7.5 and effective["monthly_spend_usd"]["limit"] == 7.5


def test_a_change_is_checked_as_the_quota_it_leaves(staff_client: APIClient) -> None:
    quota = Quota.objects.create(scope="global", quota_type="jobs_per_day", limit=5, action="warn")
    response = staff_client.patch(f"/api/quotas/{quota.pk}", {"action": "queue"}, format="json")
    assert response.status_code == 400 and "concurrent_jobs only" in response.json()["errors"]["action"][0]
    assert staff_client.put("/api/quotas/999", {"limit": 1}, format="json").status_code == 404


def test_a_non_admin_may_not_create_change_or_delete(
    alice_client: APIClient, lena_client: APIClient, vera_client: APIClient
) -> None:
    quota = Quota.objects.create(scope="global", quota_type="jobs_per_day", limit=5)
    for client in (alice_client, lena_client, vera_client):
        response = post(client, scope="global", quota_type="concurrent_jobs", limit=1)
        assert response.status_code == 403 and "may not manage quotas" in response.json()["detail"]
        assert client.patch(f"/api/quotas/{quota.pk}", {"limit": 50}, format="json").status_code == 403
        assert client.delete(f"/api/quotas/{quota.pk}").status_code == 403
    assert Quota.objects.get().limit == 5


def test_the_admin_group_manages_quotas_without_staff_status(adam_client: APIClient) -> None:
    assert post(adam_client, scope="global", quota_type="concurrent_jobs", limit=4).status_code == 201
    assert adam_client.get("/api/quotas/").json()["total"] == 1


def test_anonymous_requests_are_refused(anon: APIClient) -> None:
    assert anon.get("/api/quotas/").status_code == 401


def test_a_user_sees_their_quotas_effective_limits_and_usage(
    alice: AbstractUser, alice_client: APIClient, bob: AbstractUser
) -> None:
    in_group(alice, "researcher")
    Quota.objects.create(scope="global", quota_type="concurrent_jobs", limit=4, action="block")
    Quota.objects.create(scope="group", target="researcher", quota_type="concurrent_jobs", limit=2, action="queue")
    Quota.objects.create(scope="user", target="alice", quota_type="monthly_spend_usd", limit=50, action="warn")
    Quota.objects.create(scope="user", target="bob", quota_type="jobs_per_day", limit=1)
    Job.objects.create(owner=alice, provider="local", status=JobStatus.RUNNING, external_id="1")
    Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED)  # waiting: holds no slot
    Job.objects.create(owner=alice, provider="local", status=JobStatus.PENDING_APPROVAL)
    last_month = timezone.now() - timezone.timedelta(days=40)
    Job.objects.create(
        owner=alice, provider="local", status=JobStatus.COMPLETED, completed_at=timezone.now(), cost_usd=Decimal("12.5")
    )
    Job.objects.create(
        owner=alice,
        provider="local",
        status=JobStatus.COMPLETED,
        created_at=last_month,
        completed_at=last_month,
        cost_usd=Decimal("99"),
    )
    Job.objects.create(owner=bob, provider="local", status=JobStatus.RUNNING, external_id="2")
    body = alice_client.get("/api/quotas/").json()
    assert body["total"] == 3  # not bob's
    effective = {row["quota_type"]: row for row in body["effective"]}
    assert {k: effective["concurrent_jobs"][k] for k in ("limit", "action", "scope", "usage", "percent_used")} == {
        "limit": 2.0,
        "action": "queue",
        "scope": "group",
        "usage": 1.0,
        "percent_used": 50.0,
    }
    assert (effective["jobs_per_day"]["limit"], effective["jobs_per_day"]["usage"]) == (None, 4.0)
    assert effective["monthly_spend_usd"]["usage"] == 12.5
    assert effective["monthly_spend_usd"]["percent_used"] == 25.0
    bobs = Quota.objects.get(target="bob")
    assert alice_client.get(f"/api/quotas/{bobs.pk}").status_code == 404


def test_an_admin_sees_every_quota(staff_client: APIClient, alice: AbstractUser) -> None:
    Quota.objects.create(scope="user", target="alice", quota_type="jobs_per_day", limit=1)
    Quota.objects.create(scope="global", quota_type="jobs_per_day", limit=3)
    body = staff_client.get("/api/quotas/").json()
    assert body["total"] == 2
    assert {q["target"] for q in body["quotas"]} == {"", "alice"}
