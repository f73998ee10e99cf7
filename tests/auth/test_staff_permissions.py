"""Staff status alone grants nothing: the API asks the Django permissions the admin asks
(review finding 16). `clerk` is staff with no permission; `olivia`, a superuser, holds all.

The attack: a staff user with no permissions, who gets 403 on every admin page, read the audit
trail, changed a provider and applied a metrics template through the API.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from rest_framework.test import APIClient

from audit.models import AuditEntry
from cloudops.apikeys import api_key_create
from cloudops.metrics.services import metrics_config_get
from cloudops.models import ApiKey
from cloudops.permissions import has_staff_perm
from providers.config import provider_config_get
from providers.models import Job, JobStatus
from tests.conftest import client_for, grant

pytestmark = pytest.mark.django_db


def test_staff_without_permissions_cannot_read_the_audit_trail(clerk_client: APIClient) -> None:
    for path in ("/api/audit", "/api/audit/verify", "/api/audit/stats"):
        response = clerk_client.get(path)
        assert response.status_code == 403, path
        assert response.json() == {"detail": "Staff status and the audit.view_auditentry permission are required."}


def test_staff_without_permissions_cannot_change_a_provider(clerk_client: APIClient) -> None:
    before = provider_config_get("replicate").http_timeout
    response = clerk_client.patch("/api/cloud/providers/replicate", {"http_timeout": 5}, format="json")
    assert response.status_code == 403
    assert "providers.change_providerconfig" in response.json()["detail"]
    assert provider_config_get("replicate").http_timeout == before
    assert not AuditEntry.objects.filter(event_type="provider.configured").exists()
    assert clerk_client.get("/api/cloud/providers/replicate").status_code == 403


def test_staff_without_permissions_cannot_touch_the_metrics_configuration(clerk_client: APIClient) -> None:
    response = clerk_client.post("/api/cloud/metrics/config/templates/full")
    assert response.status_code == 403
    assert response.json() == {"detail": "Staff status and the metrics.change_metricsconfig permission are required."}
    assert metrics_config_get().prometheus_enabled is False
    assert clerk_client.put("/api/cloud/metrics/config", {"prometheus_enabled": True}, format="json").status_code == 403
    assert clerk_client.get("/api/cloud/metrics/config").status_code == 403
    assert clerk_client.get("/api/cloud/metrics/config/preview").status_code == 403
    assert not AuditEntry.objects.filter(event_type="config.changed").exists()


@pytest.fixture
def alices_job(alice: AbstractUser) -> Job:
    return Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED, name="alice's")


def test_staff_without_permissions_see_only_their_own_jobs(clerk_client: APIClient, alices_job: Job) -> None:
    assert clerk_client.get("/api/cloud/jobs").json()["total"] == 0
    for path in (f"/api/cloud/jobs/{alices_job.pk}", f"/api/cloud/jobs/{alices_job.pk}/logs"):
        assert clerk_client.get(path).status_code == 404
    assert clerk_client.post(f"/api/cloud/jobs/{alices_job.pk}/cancel").status_code == 404
    assert Job.objects.get(pk=alices_job.pk).status == JobStatus.QUEUED


def test_viewing_every_job_is_not_cancelling_them(clerk: AbstractUser, alices_job: Job) -> None:
    client = client_for(grant(clerk, "providers.view_job"))
    body = client.get("/api/cloud/jobs").json()
    assert [job["id"] for job in body["jobs"]] == [alices_job.pk]
    assert client.get(f"/api/cloud/jobs/{alices_job.pk}").status_code == 200
    assert client.get(f"/api/cloud/jobs/{alices_job.pk}/logs").status_code == 200
    refused = client.post(f"/api/cloud/jobs/{alices_job.pk}/cancel")
    assert refused.status_code == 403
    assert "providers.change_job" in refused.json()["detail"]
    assert Job.objects.get(pk=alices_job.pk).status == JobStatus.QUEUED


def test_the_change_job_permission_cancels_another_users_job(clerk: AbstractUser, alices_job: Job) -> None:
    client = client_for(grant(clerk, "providers.view_job", "providers.change_job"))
    assert client.post(f"/api/cloud/jobs/{alices_job.pk}/cancel").status_code == 200
    assert Job.objects.get(pk=alices_job.pk).status == JobStatus.CANCELLED
    assert AuditEntry.objects.get(event_type="job.cancelled").actor_username == "clerk"


def test_revoking_another_users_key_needs_the_change_apikey_permission(
    clerk: AbstractUser, alice: AbstractUser
) -> None:
    alices_key, _ = api_key_create(owner=alice, name="laptop")
    assert client_for(clerk).delete(f"/api/auth/api-keys/{alices_key.pk}").status_code == 404
    assert ApiKey.objects.get(pk=alices_key.pk).is_active
    granted = client_for(grant(clerk, "cloudops.change_apikey"))
    assert granted.delete(f"/api/auth/api-keys/{alices_key.pk}").status_code == 200
    assert not ApiKey.objects.get(pk=alices_key.pk).is_active


def test_a_view_permission_reads_but_does_not_change(clerk: AbstractUser) -> None:
    client = client_for(grant(clerk, "providers.view_providerconfig", "metrics.view_metricsconfig"))
    assert client.get("/api/cloud/providers/replicate").status_code == 200
    assert client.patch("/api/cloud/providers/replicate", {"http_timeout": 5}, format="json").status_code == 403
    assert client.get("/api/cloud/metrics/config").status_code == 200
    assert client.get("/api/cloud/metrics/config/preview").status_code == 200
    assert client.post("/api/cloud/metrics/config/templates/full").status_code == 403


def test_a_change_permission_changes(clerk: AbstractUser) -> None:
    client = client_for(grant(clerk, "providers.change_providerconfig", "metrics.change_metricsconfig"))
    assert client.patch("/api/cloud/providers/replicate", {"http_timeout": 5}, format="json").status_code == 200
    assert provider_config_get("replicate").http_timeout == 5
    assert client.post("/api/cloud/metrics/config/templates/full").status_code == 200
    assert metrics_config_get().prometheus_enabled is True


def test_a_permission_without_staff_status_grants_nothing(alice: AbstractUser) -> None:
    alice = grant(alice, "audit.view_auditentry", "providers.change_providerconfig")
    assert not has_staff_perm(alice, "audit.view_auditentry")
    client = client_for(alice)
    assert client.get("/api/audit").status_code == 403
    assert client.patch("/api/cloud/providers/replicate", {"http_timeout": 5}, format="json").status_code == 403


def test_an_inactive_staff_user_holds_nothing(olivia: AbstractUser) -> None:
    olivia.is_active = False
    assert not has_staff_perm(olivia, "audit.view_auditentry")


def test_superusers_hold_every_permission(staff_client: APIClient, alices_job: Job) -> None:
    for path in ("/api/audit", "/api/cloud/providers/replicate", "/api/cloud/metrics/config", "/api/cloud/jobs"):
        assert staff_client.get(path).status_code == 200, path
    assert staff_client.post(f"/api/cloud/jobs/{alices_job.pk}/cancel").status_code == 200


def test_a_method_a_view_does_not_have_is_still_405(staff_client: APIClient, clerk_client: APIClient) -> None:
    assert staff_client.post("/api/audit").status_code == 405
    assert clerk_client.post("/api/audit").status_code == 405
    assert APIClient().post("/api/audit").status_code == 401


# The same permission opens the same thing in the admin and in the API. Without it the API
# answers 403, except for another user's job, which it does not admit exists (404).
ADMIN_AND_API = [
    ("audit.view_auditentry", "/admin/audit/auditentry/", "/api/audit", 403),
    ("providers.view_providerconfig", "/admin/providers/providerconfig/", "/api/cloud/providers/replicate", 403),
    (
        "metrics.view_metricsconfig",
        "/admin/metrics/metricsconfig/{metrics}/change/",
        "/api/cloud/metrics/config",
        403,
    ),
    ("providers.view_job", "/admin/providers/job/{job}/change/", "/api/cloud/jobs/{job}", 404),
]


@pytest.mark.parametrize(("perm", "admin_path", "api_path", "refused"), ADMIN_AND_API)
def test_the_admin_and_the_api_agree(
    clerk: AbstractUser, alices_job: Job, perm: str, admin_path: str, api_path: str, refused: int
) -> None:
    ids = {"job": alices_job.pk, "metrics": metrics_config_get().pk}
    admin_path, api_path = admin_path.format(**ids), api_path.format(**ids)
    browser = Client()
    browser.force_login(clerk)
    assert browser.get(admin_path).status_code == 403
    assert client_for(clerk).get(api_path).status_code == refused
    clerk = grant(clerk, perm)
    browser.force_login(clerk)
    assert browser.get(admin_path).status_code == 200
    assert client_for(clerk).get(api_path).status_code == 200


def test_admin_actions_need_the_change_permission(clerk: AbstractUser, alices_job: Job) -> None:
    browser = Client()
    browser.force_login(grant(clerk, "providers.view_job"))
    browser.post("/admin/providers/job/", {"action": "cancel_selected", "_selected_action": [alices_job.pk]})
    assert Job.objects.get(pk=alices_job.pk).status == JobStatus.QUEUED
    assert not AuditEntry.objects.filter(event_type="job.cancelled").exists()
