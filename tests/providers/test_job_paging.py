"""The job list pages by cursor at any depth, keeps `offset` for existing clients up to a bound,
and counts its total only up to a cap it names (providers.paging)."""

from __future__ import annotations

import base64
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone
from rest_framework.test import APIClient

from providers.models import Job, JobStatus
from providers.paging import MAX_JOB_OFFSET, TOTAL_COUNT_CAP

pytestmark = pytest.mark.django_db


@pytest.fixture
def seven_jobs(alice: AbstractUser) -> list[str]:
    """Seven of alice's jobs, newest first; three share one instant (the id breaks the tie)."""
    base = timezone.now() - timedelta(hours=1)
    stamps = [base, base + timedelta(minutes=1), *[base + timedelta(minutes=2)] * 3, base + timedelta(minutes=3)]
    stamps.append(base + timedelta(minutes=4))
    jobs = [Job.objects.create(owner=alice, provider="local", created_at=at) for at in stamps]
    return [job.pk for job in sorted(jobs, key=lambda job: (job.created_at, job.pk), reverse=True)]


def walk(client: APIClient, path: str) -> tuple[list[str], list[dict]]:
    ids, pages = [], []
    while path:
        body = client.get(path).json()
        pages.append(body)
        ids += [job["id"] for job in body["jobs"]]
        path = body["next"]
    return ids, pages


def test_following_next_visits_every_job_once_newest_first(alice_client: APIClient, seven_jobs: list[str]) -> None:
    ids, pages = walk(alice_client, "/api/cloud/jobs?limit=2")
    assert ids == seven_jobs
    assert [len(page["jobs"]) for page in pages] == [2, 2, 2, 1]
    assert all(page["total"] == 7 and page["total_exact"] for page in pages)
    assert [page["offset"] for page in pages] == [0, None, None, None]
    assert pages[-1]["next_cursor"] is None and pages[-1]["next"] is None


def test_the_cursor_continues_where_an_offset_page_ends(alice_client: APIClient, seven_jobs: list[str]) -> None:
    page = alice_client.get("/api/cloud/jobs?limit=3&offset=2").json()
    after = alice_client.get(f"/api/cloud/jobs?limit=3&cursor={page['next_cursor']}").json()
    assert [job["id"] for job in page["jobs"] + after["jobs"]] == seven_jobs[2:]


def test_the_next_link_keeps_the_filters_and_drops_the_offset(alice_client: APIClient, seven_jobs: list[str]) -> None:
    body = alice_client.get("/api/cloud/jobs?status=pending&provider=local&limit=2&offset=1").json()
    link = urlsplit(body["next"])
    assert link.scheme == "http" and link.path == "/api/cloud/jobs"
    assert parse_qs(link.query) == {
        "status": ["pending"],
        "provider": ["local"],
        "limit": ["2"],
        "cursor": [body["next_cursor"]],
    }


def test_new_jobs_do_not_shift_the_pages_after_a_cursor(
    alice_client: APIClient, alice: AbstractUser, seven_jobs: list[str]
) -> None:
    first = alice_client.get("/api/cloud/jobs?limit=3").json()
    Job.objects.create(owner=alice, provider="local")
    second = alice_client.get(first["next"]).json()
    assert [job["id"] for job in second["jobs"]] == seven_jobs[3:6]
    assert second["total"] == 8


def test_a_cursor_page_shows_only_the_callers_jobs(
    alice_client: APIClient, bob: AbstractUser, seven_jobs: list[str]
) -> None:
    Job.objects.create(owner=bob, provider="local", created_at=timezone.now() - timedelta(days=1))
    ids, _ = walk(alice_client, "/api/cloud/jobs?limit=4")
    assert ids == seven_jobs


def test_past_an_offset_the_total_is_still_counted(alice_client: APIClient, seven_jobs: list[str]) -> None:
    body = alice_client.get("/api/cloud/jobs?offset=50").json()
    assert (body["jobs"], body["total"], body["total_exact"], body["next"]) == ([], 7, True, None)


@pytest.mark.slow
def test_the_total_stops_counting_at_the_cap_and_says_so(staff_client: APIClient, alice: AbstractUser) -> None:
    Job.objects.bulk_create(
        Job(owner=alice, provider="local", upload_token=f"T{i:031d}") for i in range(TOTAL_COUNT_CAP + 1)
    )
    body = staff_client.get("/api/cloud/jobs?limit=1").json()
    assert (body["total"], body["total_exact"]) == (TOTAL_COUNT_CAP, False)
    assert staff_client.get("/api/cloud/jobs?status=running").json()["total_exact"] is True


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "%FF%FE",
        _cursor("2026-01-01T00:00:00+00:00"),  # no id
        _cursor("yesterday|job-1"),
        _cursor("2026-01-01T00:00:00|job-1"),  # no time zone
        _cursor("2026-01-01T00:00:00+00:00|"),
        _cursor("2026-01-01T00:00:00+00:00|" + "j" * 64),
        "x" * 201,
    ],
)
def test_a_cursor_this_server_did_not_hand_out_is_a_400_naming_it(alice_client: APIClient, cursor: str) -> None:
    response = alice_client.get(f"/api/cloud/jobs?cursor={cursor}")
    assert response.status_code == 400, response.content
    assert list(response.json()["errors"]) == ["cursor"]


def test_a_cursor_with_an_offset_is_a_400_naming_the_cursor(alice_client: APIClient, seven_jobs: list[str]) -> None:
    cursor = alice_client.get("/api/cloud/jobs?limit=2").json()["next_cursor"]
    response = alice_client.get(f"/api/cloud/jobs?cursor={cursor}&offset=2")
    assert response.status_code == 400 and list(response.json()["errors"]) == ["cursor"]


def test_an_offset_past_the_bound_is_a_400_pointing_at_the_cursor(alice_client: APIClient) -> None:
    response = alice_client.get(f"/api/cloud/jobs?offset={MAX_JOB_OFFSET + 1}")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["offset"]
    assert "cursor" in response.json()["errors"]["offset"][0]
    assert alice_client.get(f"/api/cloud/jobs?offset={MAX_JOB_OFFSET}").status_code == 200


def test_a_job_filtered_out_by_status_is_not_on_any_cursor_page(
    alice_client: APIClient, alice: AbstractUser, seven_jobs: list[str]
) -> None:
    running = Job.objects.create(owner=alice, provider="local", status=JobStatus.RUNNING)
    ids, pages = walk(alice_client, "/api/cloud/jobs?status=pending&limit=3")
    assert ids == seven_jobs and running.pk not in ids
    assert all("status=pending" in (page["next"] or "status=pending") for page in pages)
