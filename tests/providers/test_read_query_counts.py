"""What an authenticated read costs the database, pinned so it cannot drift back: the API key
and its user in one query, then the page. The job list counts (a capped COUNT,
providers.paging) only when the page cannot tell its total: a full page or a cursor page.
The provider rows behind each job's output location come from this process's copies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from rest_framework.test import APIClient

from providers.models import Job, JobStatus

pytestmark = pytest.mark.django_db

AssertQueries = Callable[..., Any]


@pytest.fixture
def some_jobs(alice: AbstractUser, bob: AbstractUser) -> list[Job]:
    statuses = [JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED]
    made = [Job.objects.create(owner=alice, provider="local", status=status) for status in statuses]
    made.append(Job.objects.create(owner=alice, provider="replicate", status=JobStatus.QUEUED))
    made.append(Job.objects.create(owner=bob, provider="local", status=JobStatus.RUNNING))
    return made


def warm(client: APIClient, path: str) -> None:
    """A process's first request reads the provider rows it then keeps."""
    assert client.get(path).status_code == 200


@pytest.mark.parametrize(
    "path, queries",
    [
        ("/api/users/me", 1),  # the key with its user
        ("/api/cloud/jobs", 2),  # + the page, which is its own total
        ("/api/cloud/jobs?status=running&provider=local&limit=2", 2),
        ("/api/cloud/jobs?limit=2", 3),  # a full page: + the capped count
        ("/api/cloud/jobs?limit=2&offset=1", 3),
        ("/api/cloud/jobs?status=running,completed,failed&limit=1&offset=1", 3),
    ],
)
def test_a_users_reads_with_an_api_key(
    alice_client: APIClient, some_jobs: list[Job], django_assert_num_queries: AssertQueries, path: str, queries: int
) -> None:
    warm(alice_client, path)
    with django_assert_num_queries(queries):
        assert alice_client.get(path).status_code == 200


def test_a_job_with_an_api_key(
    alice_client: APIClient, some_jobs: list[Job], django_assert_num_queries: AssertQueries
) -> None:
    path = f"/api/cloud/jobs/{some_jobs[0].pk}"
    warm(alice_client, path)
    with django_assert_num_queries(2):  # the key with its user, the job
        assert alice_client.get(path).status_code == 200


def test_staff_reads_with_an_api_key(
    staff_client: APIClient, some_jobs: list[Job], django_assert_num_queries: AssertQueries
) -> None:
    warm(staff_client, "/api/cloud/jobs")
    with django_assert_num_queries(2):  # a superuser: has_perm asks nothing
        response = staff_client.get("/api/cloud/jobs")
    assert response.status_code == 200 and response.json()["total"] == len(some_jobs)


def test_a_cursor_page_with_an_api_key(
    staff_client: APIClient, some_jobs: list[Job], django_assert_num_queries: AssertQueries
) -> None:
    path = staff_client.get("/api/cloud/jobs?limit=2").json()["next"]
    warm(staff_client, path)
    with django_assert_num_queries(3):  # the key, the page after the cursor, the capped count
        response = staff_client.get(path)
    assert response.status_code == 200 and response.json()["total"] == len(some_jobs)
