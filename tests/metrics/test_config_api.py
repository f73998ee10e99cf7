"""GET/PUT /api/cloud/metrics/config, templates and preview: staff only, validated, audited."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEntry
from cloudops.metrics.categories import CATEGORIES
from cloudops.metrics.models import MetricsConfig

pytestmark = pytest.mark.django_db

CONFIG = "/api/cloud/metrics/config"


def config_changes() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(event_type="config.changed").order_by("sequence"))


def test_export_is_off_by_default_with_the_standard_categories(staff_client: APIClient) -> None:
    body = staff_client.get(CONFIG).json()
    assert body["prometheus_enabled"] is False
    assert body["prometheus_categories"] == ["jobs", "http", "health"]
    assert [c["id"] for c in body["available_categories"]] == list(CATEGORIES)
    assert [t["id"] for t in body["templates"]] == ["minimal", "standard", "security", "full"]


def test_it_enables_the_export_and_audits_the_changed_fields(staff_client: APIClient) -> None:
    response = staff_client.put(
        CONFIG, {"prometheus_enabled": True, "prometheus_categories": ["health", "jobs", "http"]}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["prometheus_enabled"] is True
    # Stored in the guide's category order, whatever order they were sent in.
    assert response.json()["prometheus_categories"] == ["jobs", "http", "health"]
    config = MetricsConfig.objects.get()
    assert (config.prometheus_enabled, config.updated_by) == (True, "olivia")
    [entry] = config_changes()
    assert (entry.target_type, entry.action, entry.actor_username) == ("metrics_config", "update", "olivia")
    # The categories were already the standard ones: only the flag changed.
    assert entry.details == {
        "changed": ["prometheus_enabled"],
        "from": {"prometheus_enabled": False},
        "to": {"prometheus_enabled": True},
    }


def test_a_put_that_changes_nothing_writes_no_audit_entry(staff_client: APIClient) -> None:
    staff_client.put(CONFIG, {"prometheus_categories": ["jobs", "http", "health"]}, format="json")
    assert config_changes() == []


def test_it_changes_only_the_fields_sent(staff_client: APIClient) -> None:
    staff_client.put(CONFIG, {"prometheus_categories": ["audit"]}, format="json")
    body = staff_client.get(CONFIG).json()
    assert (body["prometheus_enabled"], body["prometheus_categories"]) == (False, ["audit"])


def test_an_unknown_category_is_refused_by_name_and_nothing_changes(staff_client: APIClient) -> None:
    response = staff_client.put(
        CONFIG, {"prometheus_enabled": True, "prometheus_categories": ["jobs", "gpus"]}, format="json"
    )
    assert response.status_code == 400
    assert "prometheus_categories" in response.json()["detail"]
    assert "unknown category 'gpus'" in response.json()["detail"]
    assert staff_client.get(CONFIG).json()["prometheus_enabled"] is False
    assert config_changes() == []


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "non_field_errors", "Send prometheus_enabled and/or prometheus_categories"),
        ({"prometheus_enabled": "maybe"}, "prometheus_enabled", "Must be a valid boolean"),
        ({"prometheus_categories": "jobs"}, "prometheus_categories", "Expected a list"),
        ({"prometheus_enabled": True, "tensorboard": True}, "tensorboard", "Unknown field"),
    ],
)
def test_bad_bodies_are_refused_with_the_field_named(
    staff_client: APIClient, body: dict, field: str, message: str
) -> None:
    response = staff_client.put(CONFIG, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert message in response.json()["detail"]
    assert MetricsConfig.objects.filter(prometheus_enabled=True).count() == 0


def test_only_staff_may_read_or_change_the_configuration(alice_client: APIClient, anon: APIClient) -> None:
    assert alice_client.get(CONFIG).status_code == 403
    assert alice_client.put(CONFIG, {"prometheus_enabled": True}, format="json").status_code == 403
    assert alice_client.post(CONFIG + "/templates/full").status_code == 403
    assert alice_client.get(CONFIG + "/preview").status_code == 403
    assert anon.get(CONFIG).status_code == 401
    assert MetricsConfig.objects.filter(prometheus_enabled=True).count() == 0


@pytest.mark.parametrize(
    ("template", "categories"),
    [
        ("minimal", ["jobs"]),
        ("standard", ["jobs", "http", "health"]),
        ("security", ["jobs", "http", "rate_limits", "approvals", "audit"]),
        ("full", list(CATEGORIES)),
    ],
)
def test_a_template_sets_its_categories_and_turns_the_export_on(
    staff_client: APIClient, template: str, categories: list[str]
) -> None:
    response = staff_client.post(f"{CONFIG}/templates/{template}")
    assert response.status_code == 200
    assert response.json()["prometheus_enabled"] is True
    assert response.json()["prometheus_categories"] == categories
    assert MetricsConfig.objects.get().prometheus_categories == categories
    [entry] = config_changes()
    assert entry.action == f"template:{template}"
    assert "prometheus_enabled" in entry.details["changed"]


def test_an_unknown_template_is_404_and_changes_nothing(staff_client: APIClient) -> None:
    response = staff_client.post(f"{CONFIG}/templates/everything")
    assert response.status_code == 404
    assert "unknown template 'everything'" in response.json()["detail"]
    assert config_changes() == []
    assert staff_client.get(CONFIG).json()["prometheus_enabled"] is False


def test_preview_renders_the_requested_categories_without_changing_the_config(staff_client: APIClient) -> None:
    before = MetricsConfig.objects.get_or_create(pk=1)[0].updated_at
    response = staff_client.get(CONFIG + "/preview?categories=jobs&categories=health")
    assert response.status_code == 200
    body = response.json()
    assert body["categories"] == ["jobs", "health"]
    assert "simpletuner_jobs_total 0.0" in body["content"]
    assert "simpletuner_uptime_seconds" in body["content"]
    assert "simpletuner_http_requests_total" not in body["content"]
    assert body["metric_count"] == len([ln for ln in body["content"].splitlines() if ln and not ln.startswith("#")])
    config = MetricsConfig.objects.get()
    assert (config.prometheus_enabled, config.prometheus_categories, config.updated_at) == (
        False,
        ["jobs", "http", "health"],
        before,
    )
    assert config_changes() == []


def test_preview_without_categories_shows_the_configured_ones(staff_client: APIClient) -> None:
    staff_client.put(CONFIG, {"prometheus_categories": ["audit"]}, format="json")
    body = staff_client.get(CONFIG + "/preview").json()
    assert body["categories"] == ["audit"]
    assert "simpletuner_audit_log_entries_total" in body["content"]
    assert "simpletuner_jobs_total" not in body["content"]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("categories=jobs&categories=gpus", "categories", "unknown category 'gpus'"),
        ("category=jobs", "category", "Unknown query parameter"),
    ],
)
def test_preview_refuses_unknown_categories_and_parameters(
    staff_client: APIClient, query: str, field: str, message: str
) -> None:
    response = staff_client.get(f"{CONFIG}/preview?{query}")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert message in response.json()["detail"]
