from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import AbstractUser
from django.db.models import F
from django.utils import timezone
from rest_framework.test import APIClient

from providers.models import Job, JobStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def jobs(alice: AbstractUser, bob: AbstractUser) -> dict[str, Job]:
    base = timezone.now() - timedelta(hours=1)
    made = {}
    for index, (name, owner, provider, status) in enumerate(
        [
            ("a1", alice, "local", JobStatus.RUNNING),
            ("a2", alice, "replicate", JobStatus.COMPLETED),
            ("a3", alice, "local", JobStatus.FAILED),
            ("b1", bob, "local", JobStatus.QUEUED),
        ]
    ):
        made[name] = Job.objects.create(
            owner=owner, provider=provider, status=status, name=name, created_at=base + timedelta(minutes=index)
        )
    return made


def names(response: object) -> list[str]:
    return [job["name"] for job in response.json()["jobs"]]  # type: ignore[attr-defined]


def test_users_list_their_own_jobs_newest_first(alice_client: APIClient, jobs: dict[str, Job]) -> None:
    response = alice_client.get("/api/cloud/jobs")
    assert response.status_code == 200
    assert names(response) == ["a3", "a2", "a1"]
    assert (response.json()["total"], response.json()["limit"], response.json()["offset"]) == (3, 50, 0)


def test_staff_list_everyone_and_filter_by_owner(staff_client: APIClient, jobs: dict[str, Job]) -> None:
    assert staff_client.get("/api/cloud/jobs").json()["total"] == 4
    assert names(staff_client.get("/api/cloud/jobs?owner=bob")) == ["b1"]


def test_owner_filter_never_reveals_other_users_jobs(alice_client: APIClient, jobs: dict[str, Job]) -> None:
    response = alice_client.get("/api/cloud/jobs?owner=bob")
    assert response.json() == {
        "jobs": [],
        "total": 0,
        "total_exact": True,
        "limit": 50,
        "offset": 0,
        "next_cursor": None,
        "next": None,
    }


def test_filters_by_status_and_provider(alice_client: APIClient, jobs: dict[str, Job]) -> None:
    assert names(alice_client.get("/api/cloud/jobs?status=running,failed")) == ["a3", "a1"]
    assert names(alice_client.get("/api/cloud/jobs?status=running&status=completed")) == ["a2", "a1"]
    assert names(alice_client.get("/api/cloud/jobs?provider=replicate")) == ["a2"]
    assert alice_client.get("/api/cloud/jobs?status=running&provider=replicate").json()["total"] == 0


def test_pagination_has_a_real_total(alice_client: APIClient, jobs: dict[str, Job]) -> None:
    page = alice_client.get("/api/cloud/jobs?limit=2&offset=2").json()
    assert [j["name"] for j in page["jobs"]] == ["a1"]
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 2)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=exploded", "status"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("offset=-1", "offset"),
        ("limit=ten", "limit"),
    ],
)
def test_bad_query_parameters_are_a_400(alice_client: APIClient, query: str, field: str) -> None:
    response = alice_client.get(f"/api/cloud/jobs?{query}")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_listing_needs_authentication(anon: APIClient) -> None:
    assert anon.get("/api/cloud/jobs").status_code == 401


def test_a_job_shows_its_details_and_upload_progress(alice_client: APIClient, jobs: dict[str, Job]) -> None:
    job = jobs["a1"]
    uploaded = datetime(2025, 1, 15, 10, 30, tzinfo=UTC)
    Job.objects.filter(pk=job.pk).update(
        upload_objects=F("upload_objects") + 3, upload_bytes=F("upload_bytes") + 5_000_000_000, last_upload_at=uploaded
    )
    response = alice_client.get(f"/api/cloud/jobs/{job.pk}")
    assert response.status_code == 200
    body = response.json()["job"]
    assert body["id"] == job.pk and body["status"] == "running"
    assert body["upload_progress"] == {"files": 3, "bytes": 5_000_000_000, "last_upload_at": "2025-01-15T10:30:00Z"}
    assert body["output"]["path"].endswith(f"/outputs/{job.pk}")
    assert "upload_token" not in body


def test_other_users_jobs_are_not_found(alice_client: APIClient, jobs: dict[str, Job]) -> None:
    bobs = jobs["b1"].pk
    for path in (f"/api/cloud/jobs/{bobs}", f"/api/cloud/jobs/{bobs}/logs"):
        response = alice_client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "No Job matches the given query."}
    assert alice_client.post(f"/api/cloud/jobs/{bobs}/cancel").status_code == 404
    assert Job.objects.get(pk=bobs).status == JobStatus.QUEUED


def test_staff_see_any_job(staff_client: APIClient, jobs: dict[str, Job]) -> None:
    assert staff_client.get(f"/api/cloud/jobs/{jobs['b1'].pk}").json()["job"]["owner"] == "bob"


def test_an_unknown_job_is_not_found(alice_client: APIClient) -> None:
    assert alice_client.get("/api/cloud/jobs/job-nope").status_code == 404


def test_job_details_need_authentication(anon: APIClient, jobs: dict[str, Job]) -> None:
    assert anon.get(f"/api/cloud/jobs/{jobs['a1'].pk}").status_code == 401
    assert anon.get(f"/api/cloud/jobs/{jobs['a1'].pk}/logs").status_code == 401
    assert anon.post(f"/api/cloud/jobs/{jobs['a1'].pk}/cancel").status_code == 401


def test_read_only_endpoints_refuse_writes(alice_client: APIClient, jobs: dict[str, Job]) -> None:
    assert alice_client.delete(f"/api/cloud/jobs/{jobs['a1'].pk}").status_code == 405
    assert alice_client.get(f"/api/cloud/jobs/{jobs['a1'].pk}/cancel").status_code == 405
    assert alice_client.get("/api/cloud/jobs/submit").status_code == 405
