"""Each role through the permission matrix (docs/governance.md), with API keys: what it may
do, and the 403 naming the role for what it may not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser, Group
from rest_framework.test import APIClient

from governance.roles import Role, role_of
from providers.models import Job, JobStatus
from tests.conftest import client_for
from tests.governance.conftest import in_group
from tests.providers.helpers import submit

pytestmark = pytest.mark.django_db

AssertQueries = Callable[..., Any]


@pytest.fixture
def jobs(alice: AbstractUser, bob: AbstractUser, vera: AbstractUser) -> dict[str, Job]:
    return {
        user.get_username(): Job.objects.create(
            owner=user, provider="local", status=JobStatus.COMPLETED, logs=f"{user.get_username()} log"
        )
        for user in (alice, bob, vera)
    }


def test_the_migration_creates_the_four_role_groups() -> None:
    assert set(Group.objects.values_list("name", flat=True)) >= {"viewer", "researcher", "lead", "admin"}


@pytest.mark.parametrize(
    "client_name, role",
    [
        ("vera_client", "viewer"),
        ("alice_client", "researcher"),
        ("lena_client", "lead"),
        ("adam_client", "admin"),
        ("staff_client", "admin"),
        ("clerk_client", "admin"),
    ],
)
def test_users_me_shows_the_role(request: pytest.FixtureRequest, client_name: str, role: str) -> None:
    response = request.getfixturevalue(client_name).get("/api/users/me")
    assert response.status_code == 200
    assert response.json()["role"] == role


def test_the_highest_role_group_wins(make_user: Callable[..., AbstractUser]) -> None:
    user = in_group(in_group(make_user("both"), "viewer"), "lead")
    assert role_of(user) is Role.LEAD
    assert client_for(user).get("/api/users/me").json()["role"] == "lead"


def test_a_user_in_the_researcher_group_is_a_researcher(make_user: Callable[..., AbstractUser]) -> None:
    assert client_for(in_group(make_user("rita"), "researcher")).get("/api/users/me").json()["role"] == "researcher"


def test_the_role_costs_no_query_with_an_api_key(
    vera_client: APIClient, django_assert_num_queries: AssertQueries
) -> None:
    vera_client.get("/api/users/me")
    with django_assert_num_queries(1):  # the key, its user and the user's role
        assert vera_client.get("/api/users/me").json()["role"] == "viewer"


def test_the_role_costs_one_query_with_a_session(vera: AbstractUser, django_assert_num_queries: AssertQueries) -> None:
    client = APIClient()
    client.force_login(vera)
    client.get("/api/users/me")
    with django_assert_num_queries(3):  # the session, the user, the user's role
        assert client.get("/api/users/me").json()["role"] == "viewer"


# --- viewer ------------------------------------------------------------------------------------


def test_a_viewer_reads_her_own_jobs_and_logs(vera_client: APIClient, jobs: dict[str, Job]) -> None:
    listed = vera_client.get("/api/cloud/jobs").json()
    assert [job["id"] for job in listed["jobs"]] == [jobs["vera"].pk]
    assert vera_client.get(f"/api/cloud/jobs/{jobs['vera'].pk}").status_code == 200
    logs = vera_client.get(f"/api/cloud/jobs/{jobs['vera'].pk}/logs")
    assert logs.status_code == 200 and logs.json()["logs"] == "vera log"


def test_a_viewer_does_not_see_other_users_jobs(vera_client: APIClient, jobs: dict[str, Job]) -> None:
    assert vera_client.get(f"/api/cloud/jobs/{jobs['alice'].pk}").status_code == 404
    assert vera_client.get(f"/api/cloud/jobs/{jobs['alice'].pk}/logs").status_code == 404


def test_a_viewer_may_not_submit(vera_client: APIClient) -> None:
    for path in ("/api/cloud/jobs/submit", "/api/cloud/jobs"):
        response = submit(vera_client, path=path)
        assert response.status_code == 403
        assert "viewer" in response.json()["detail"]
    assert not Job.objects.exists()


def test_a_viewer_may_not_cancel_even_her_own_job(vera: AbstractUser, vera_client: APIClient) -> None:
    job = Job.objects.create(owner=vera, provider="local", status=JobStatus.RUNNING)
    response = vera_client.post(f"/api/cloud/jobs/{job.pk}/cancel")
    assert response.status_code == 403 and "viewer" in response.json()["detail"]
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.cancel_requested_at is None


def test_a_viewer_may_not_create_api_keys_but_lists_and_revokes_her_own(vera_client: APIClient) -> None:
    response = vera_client.post("/api/auth/api-keys", {"name": "more"}, format="json")
    assert response.status_code == 403 and "viewer" in response.json()["detail"]
    keys = vera_client.get("/api/auth/api-keys").json()
    assert keys["total"] == 1
    assert vera_client.delete(f"/api/auth/api-keys/{keys['api_keys'][0]['id']}").status_code == 200


# --- researcher ----------------------------------------------------------------------------------


def test_a_researcher_submits_cancels_and_makes_keys(alice_client: APIClient) -> None:
    response = submit(alice_client)
    assert response.status_code == 201, response.json()
    job_id = response.json()["job_id"]
    assert alice_client.post(f"/api/cloud/jobs/{job_id}/cancel").status_code in (200, 409)
    assert alice_client.post("/api/auth/api-keys", {"name": "ci"}, format="json").status_code == 201


def test_a_researcher_sees_only_her_own_jobs(alice_client: APIClient, jobs: dict[str, Job]) -> None:
    assert [job["id"] for job in alice_client.get("/api/cloud/jobs").json()["jobs"]] == [jobs["alice"].pk]
    assert alice_client.get(f"/api/cloud/jobs/{jobs['bob'].pk}").status_code == 404


# --- lead --------------------------------------------------------------------------------------


def test_a_lead_sees_every_job_and_its_logs(lena_client: APIClient, jobs: dict[str, Job]) -> None:
    listed = lena_client.get("/api/cloud/jobs").json()
    assert {job["id"] for job in listed["jobs"]} == {job.pk for job in jobs.values()}
    assert lena_client.get(f"/api/cloud/jobs/{jobs['bob'].pk}").status_code == 200
    assert lena_client.get(f"/api/cloud/jobs/{jobs['bob'].pk}/logs").json()["logs"] == "bob log"


def test_a_lead_reads_every_job_in_as_many_queries_as_a_researcher(
    lena_client: APIClient, jobs: dict[str, Job], django_assert_num_queries: AssertQueries
) -> None:
    lena_client.get("/api/cloud/jobs")
    with django_assert_num_queries(2):  # the key with its user and role, the page
        assert lena_client.get("/api/cloud/jobs").json()["total"] == 3


def test_a_lead_may_not_cancel_another_users_job(lena_client: APIClient, bob: AbstractUser) -> None:
    job = Job.objects.create(owner=bob, provider="local", status=JobStatus.RUNNING)
    assert lena_client.post(f"/api/cloud/jobs/{job.pk}/cancel").status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


def test_a_lead_submits_like_a_researcher(lena_client: APIClient) -> None:
    assert submit(lena_client).status_code == 201


def test_a_lead_may_not_configure_providers_or_read_the_audit_trail(lena_client: APIClient) -> None:
    assert lena_client.get("/api/cloud/providers/local").status_code == 403
    assert lena_client.patch("/api/cloud/providers/local", {"enabled": False}, format="json").status_code == 403
    assert lena_client.get("/api/audit").status_code == 403


# --- admin -------------------------------------------------------------------------------------


def test_an_admin_group_member_sees_every_job(adam_client: APIClient, jobs: dict[str, Job]) -> None:
    assert adam_client.get("/api/cloud/jobs").json()["total"] == 3


def test_staff_keep_their_permissions_whatever_the_role(clerk_client: APIClient, jobs: dict[str, Job]) -> None:
    # Staff are admins by role, and what an admin may configure is still Django's permissions.
    assert clerk_client.get("/api/users/me").json()["role"] == "admin"
    assert clerk_client.get("/api/cloud/jobs").json()["total"] == 0
    assert clerk_client.get("/api/cloud/providers/local").status_code == 403


def test_a_superuser_configures_providers_and_reads_the_audit_trail(staff_client: APIClient) -> None:
    assert staff_client.get("/api/cloud/providers/local").status_code == 200
    assert staff_client.get("/api/audit").status_code == 200


def test_a_role_change_applies_to_the_next_request(alice: AbstractUser, alice_client: APIClient) -> None:
    assert submit(alice_client).status_code == 201
    in_group(alice, "viewer")
    assert submit(alice_client).status_code == 403
