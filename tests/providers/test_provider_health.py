from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from providers.models import CircuitBreaker, CircuitState
from tests.fakes.replicate import FakeReplicate

pytestmark = pytest.mark.django_db


def components(client: APIClient, query: str = "?include_providers=true") -> dict[str, dict]:
    response = client.get(f"/api/cloud/health{query}")
    assert response.status_code == 200
    return {c["name"]: c for c in response.json()["components"]}


def test_provider_checks_only_run_when_asked(anon: APIClient, replicate: FakeReplicate) -> None:
    names = set(components(anon, ""))
    assert not any(name.startswith("provider:") for name in names)
    assert replicate.requests == []


def test_enabled_providers_are_checked_live(anon: APIClient, replicate: FakeReplicate) -> None:
    found = components(anon)
    assert found["provider:local"]["status"] == "healthy"
    assert found["provider:replicate"]["status"] == "healthy"
    assert found["provider:replicate"]["message"] == "Replicate API reachable (simpletuner-ops)"
    assert found["provider:replicate"]["latency_ms"] >= 0
    assert len(replicate.requests_to("GET", "/account")) == 1


def test_a_disabled_provider_is_not_checked(anon: APIClient) -> None:
    found = components(anon)
    assert "provider:replicate" not in found
    assert found["provider:local"]["message"] == "Local jobs can run"


def test_a_rejected_token_degrades_and_only_staff_see_why(
    anon: APIClient, staff_client: APIClient, replicate: FakeReplicate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_revoked")
    public = components(anon)["provider:replicate"]
    assert (public["status"], public["message"]) == ("degraded", "Replicate API check failed")
    assert "error" not in public
    staff = components(staff_client)["provider:replicate"]
    assert staff["error"] == "replicate rejected the API token (401)"
    assert "r8_revoked" not in str(staff)


def test_a_missing_token_is_named(anon: APIClient, replicate: FakeReplicate, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPLICATE_API_TOKEN")
    found = components(anon)["provider:replicate"]
    assert found["status"] == "degraded"
    assert found["message"] == "REPLICATE_API_TOKEN is not configured (environment or secrets store)"


def test_an_open_circuit_is_reported_without_calling_the_provider(anon: APIClient, replicate: FakeReplicate) -> None:
    CircuitBreaker.objects.create(provider="replicate", state=CircuitState.OPEN, opened_at=timezone.now())
    found = components(anon)
    assert found["provider:replicate"]["status"] == "degraded"
    assert "circuit breaker open" in found["provider:replicate"]["message"]
    assert found["circuit_breakers"]["status"] == "degraded"
    assert replicate.requests == []
