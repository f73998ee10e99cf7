"""The metrics configuration in the admin: one row, saved through the audited service."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEntry
from cloudops.metrics.models import MetricsConfig

pytestmark = pytest.mark.django_db


def test_the_changelist_opens_the_single_configuration(admin_client: Client) -> None:
    response = admin_client.get("/admin/metrics/metricsconfig/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/metrics/metricsconfig/1/change/"
    page = admin_client.get(response["Location"])
    assert page.status_code == 200
    assert b"rate_limits: Rate limit violations" in page.content
    assert b"simpletuner_jobs_total" in page.content  # the preview


def test_saving_in_the_admin_is_validated_and_audited(admin_client: Client) -> None:
    admin_client.get("/admin/metrics/metricsconfig/")
    response = admin_client.post(
        "/admin/metrics/metricsconfig/1/change/",
        {"prometheus_enabled": "on", "prometheus_categories": ["audit", "jobs"], "apply_template": ""},
    )
    assert response.status_code == 302
    config = MetricsConfig.objects.get()
    assert (config.prometheus_enabled, config.prometheus_categories) == (True, ["jobs", "audit"])
    entry = AuditEntry.objects.get(event_type="config.changed")
    assert (entry.actor_username, sorted(entry.details["changed"])) == (
        "olivia",
        ["prometheus_categories", "prometheus_enabled"],
    )


def test_an_unknown_category_is_refused_in_the_admin(admin_client: Client) -> None:
    admin_client.get("/admin/metrics/metricsconfig/")
    response = admin_client.post(
        "/admin/metrics/metricsconfig/1/change/", {"prometheus_categories": ["gpus"], "apply_template": ""}
    )
    assert response.status_code == 200
    assert b"Select a valid choice" in response.content
    assert not AuditEntry.objects.filter(event_type="config.changed").exists()


def test_a_template_applied_in_the_admin_wins_over_the_checkboxes(admin_client: Client) -> None:
    admin_client.get("/admin/metrics/metricsconfig/")
    admin_client.post(
        "/admin/metrics/metricsconfig/1/change/", {"prometheus_categories": ["audit"], "apply_template": "security"}
    )
    config = MetricsConfig.objects.get()
    assert config.prometheus_enabled is True
    assert config.prometheus_categories == ["jobs", "http", "rate_limits", "approvals", "audit"]
    assert AuditEntry.objects.get(event_type="config.changed").action == "template:security"
