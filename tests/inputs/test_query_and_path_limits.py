"""Query parameters are validated with ranges, and path segments that cannot name anything
we store are a 404 at routing (never a database error)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from cloudops.serializers import MAX_BIGINT, MAX_OFFSET
from providers.paging import MAX_JOB_OFFSET

pytestmark = pytest.mark.django_db

HUGE = str(2**64)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"/api/cloud/jobs?offset={HUGE}", "offset"),
        (f"/api/audit?offset={HUGE}", "offset"),
        (f"/api/audit?cursor={HUGE}", "cursor"),
        (f"/api/audit/verify?from_sequence={HUGE}", "from_sequence"),
        (f"/api/audit/verify?to_sequence={HUGE}", "to_sequence"),
        ("/api/cloud/jobs?limit=" + "9" * 5000, "limit"),
    ],
)
def test_an_out_of_range_number_is_a_400_naming_it(staff_client: APIClient, path: str, field: str) -> None:
    response = staff_client.get(path)
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith(f"{field}: ")


# The job list bounds its offset far lower than MAX_OFFSET (issue 15: deeper pages by cursor).
def test_any_user_gets_a_400_for_a_huge_job_offset(alice_client: APIClient) -> None:
    response = alice_client.get(f"/api/cloud/jobs?offset={HUGE}")
    assert response.status_code == 400
    assert f"less than or equal to {MAX_JOB_OFFSET}" in response.json()["detail"]
    assert "cursor" in response.json()["detail"]


def test_the_largest_offsets_and_sequences_are_answered(staff_client: APIClient) -> None:
    assert staff_client.get(f"/api/cloud/jobs?offset={MAX_JOB_OFFSET}").json()["jobs"] == []
    assert staff_client.get(f"/api/audit?offset={MAX_OFFSET}").json()["entries"] == []
    assert staff_client.get(f"/api/audit?cursor={MAX_BIGINT}").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/cloud/jobs/%00"),
        ("get", "/api/cloud/jobs/%00/logs"),
        ("post", "/api/cloud/jobs/%00/cancel"),
        ("get", "/api/cloud/jobs/" + "x" * 5000),
        ("get", "/api/cloud/jobs/%F0%9F%98%80"),
        ("get", "/api/cloud/providers/%00"),
        ("patch", "/api/cloud/providers/%00"),
        ("post", "/api/webhooks/%00"),
        ("delete", f"/api/auth/api-keys/{2**70}"),
    ],
)
def test_a_path_segment_that_names_nothing_storable_is_a_404(staff_client: APIClient, method: str, path: str) -> None:
    response = getattr(staff_client, method)(path)
    assert response.status_code == 404, response.content
    assert response.json() == {"detail": "Not found."}
