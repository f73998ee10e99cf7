from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from cloudops import health
from cloudops.health import Component
from providers.config import provider_config_get

pytestmark = pytest.mark.django_db


@pytest.fixture
def replicate_enabled() -> None:
    """REPLICATE_API_TOKEN is a required secret only while the replicate provider is enabled."""
    config = provider_config_get("replicate")
    config.enabled = True
    config.save()


def broken_check() -> Component:
    return health._timed("database", lambda: (_ for _ in ()).throw(RuntimeError("password=hunter2 rejected")))


def unconfigured_check() -> None:
    return None


def test_liveness_answers_ok_without_touching_the_database(anon: APIClient) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = anon.get("/api/cloud/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(queries) == 0


def test_readiness_is_ready_with_a_working_database(anon: APIClient) -> None:
    response = anon.get("/api/cloud/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


@override_settings(READINESS_CHECKS=["tests.health.test_health.broken_check"])
def test_readiness_is_503_naming_the_failing_component(anon: APIClient) -> None:
    response = anon.get("/api/cloud/health/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "not_ready", "failing": ["database"]}
    assert "hunter2" not in response.content.decode()


def test_the_health_document_has_the_documented_shape(
    anon: APIClient, monkeypatch: pytest.MonkeyPatch, replicate_enabled: None
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_secret_value")
    monkeypatch.setenv("SIMPLETUNER_AUDIT_KEY", "k" * 48)
    response = anon.get("/api/cloud/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert set(body) == {"status", "version", "uptime_seconds", "timestamp", "components"}
    assert body["timestamp"].endswith("Z")
    assert body["uptime_seconds"] >= 0
    names = [c["name"] for c in body["components"]]
    assert names == [
        "database",
        "secrets",
        "audit",
        "rate_limit_backend",
        "circuit_breakers",
        "output_storage",
        "webhooks",
    ]
    database = body["components"][0]
    assert database["status"] == "healthy" and database["latency_ms"] >= 0
    assert "database accessible" in database["message"]


def test_the_secrets_component_names_the_source_never_the_value(
    anon: APIClient, monkeypatch: pytest.MonkeyPatch, replicate_enabled: None
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_secret_value")
    body = anon.get("/api/cloud/health").json()
    secrets = next(c for c in body["components"] if c["name"] == "secrets")
    assert secrets["details"] == {
        "sources": {"REPLICATE_API_TOKEN": "environment"},
        "providers": {"environment": "ok"},
    }
    assert "r8_secret_value" not in str(body)


def test_a_missing_token_degrades_but_does_not_fail(
    anon: APIClient, monkeypatch: pytest.MonkeyPatch, replicate_enabled: None
) -> None:
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    response = anon.get("/api/cloud/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    secrets = next(c for c in body["components"] if c["name"] == "secrets")
    assert secrets["message"] == "Not configured: REPLICATE_API_TOKEN"


def test_the_replicate_token_is_not_required_while_replicate_is_disabled(
    anon: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    monkeypatch.setenv("SIMPLETUNER_AUDIT_KEY", "k" * 48)
    body = anon.get("/api/cloud/health").json()
    secrets = next(c for c in body["components"] if c["name"] == "secrets")
    assert secrets["status"] == "healthy"
    assert secrets["message"] == "No secrets required by the enabled providers"
    assert body["status"] == "healthy"


@override_settings(HEALTH_CHECKS=["tests.health.test_health.broken_check"])
def test_an_unhealthy_component_is_503_without_internal_text_for_anonymous(anon: APIClient) -> None:
    response = anon.get("/api/cloud/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert "hunter2" not in response.content.decode()
    assert response.json()["components"][0]["message"] == "database unavailable"


@override_settings(HEALTH_CHECKS=["tests.health.test_health.broken_check"])
def test_staff_see_the_internal_error_text(staff_client: APIClient) -> None:
    component = staff_client.get("/api/cloud/health").json()["components"][0]
    assert component["error"] == "RuntimeError: password=hunter2 rejected"


@override_settings(HEALTH_CHECKS=["cloudops.health.check_database", "tests.health.test_health.unconfigured_check"])
def test_unconfigured_components_are_left_out(anon: APIClient) -> None:
    names = [c["name"] for c in anon.get("/api/cloud/health").json()["components"]]
    assert names == ["database"]


def test_uptime_counts_from_process_start_not_from_the_request() -> None:
    first = health.uptime_seconds()
    assert first >= 0
    assert health.uptime_seconds() >= first


def test_overall_status_is_the_worst_component() -> None:
    ok = Component("a", "healthy", "")
    meh = Component("b", "degraded", "")
    bad = Component("c", "unhealthy", "")
    assert health.overall_status([ok]) == "healthy"
    assert health.overall_status([ok, meh]) == "degraded"
    assert health.overall_status([meh, bad, ok]) == "unhealthy"
    assert health.overall_status([]) == "healthy"


def test_probes_are_public_and_read_only(anon: APIClient) -> None:
    assert anon.post("/api/cloud/health/live").status_code == 405
    assert anon.post("/api/cloud/health").status_code == 405
