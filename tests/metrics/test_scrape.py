"""GET /api/cloud/metrics/prometheus: off by default, the configured categories, the token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from cloudops import secrets
from tests.metrics.scrape import PROMETHEUS_PATH, Scraper, samples
from tests.metrics.sources import AWKWARD_LABEL

pytestmark = pytest.mark.django_db


def test_a_disabled_export_is_404_with_a_hint_how_to_enable_it(anon: APIClient) -> None:
    response = anon.get(PROMETHEUS_PATH)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert text.count("\n") == 1
    assert "PUT /api/cloud/metrics/config" in text and '"prometheus_enabled": true' in text


def test_an_enabled_export_speaks_the_prometheus_text_format(anon: APIClient, enable) -> None:  # type: ignore[no-untyped-def]
    enable("jobs", "health")
    response = anon.get(PROMETHEUS_PATH)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.content.decode()
    assert (
        "# HELP simpletuner_jobs_total Jobs submitted (all statuses).\n# TYPE simpletuner_jobs_total counter\n" in text
    )
    assert "# TYPE simpletuner_jobs_by_status gauge\n" in text
    assert 'simpletuner_jobs_by_status{status="running"} 0.0' in text


def test_only_the_configured_categories_are_exported(scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
    enable("audit")
    names = {name for name, _ in scrape()}
    assert names == {"simpletuner_audit_log_entries_total", "simpletuner_audit_log_entries_24h"}


def test_enabled_with_no_categories_exports_nothing(scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
    enable()
    assert scrape.text() == ""


def test_head_works_and_other_methods_are_refused(anon: APIClient, enable) -> None:  # type: ignore[no-untyped-def]
    enable("jobs")
    assert anon.head(PROMETHEUS_PATH).status_code == 200
    assert anon.post(PROMETHEUS_PATH).status_code == 405


def test_label_values_are_escaped(scrape: Scraper, enable, settings: SettingsWrapper) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_SOURCES = {**settings.METRICS_SOURCES, "approvals": ["tests.metrics.sources.awkward"]}
    enable("approvals")
    text = scrape.text()
    assert 'simpletuner_test_awkward{name="say \\"hi\\"\\\\ and\\nbye"} 1.0' in text
    assert samples(text) == {("simpletuner_test_awkward", (("name", AWKWARD_LABEL),)): 1.0}


@pytest.mark.server_errors_expected("a metrics source that raises; its traceback is logged on purpose")
def test_a_broken_source_does_not_take_the_scrape_down(scrape: Scraper, enable, settings: SettingsWrapper) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_SOURCES = {**settings.METRICS_SOURCES, "approvals": ["tests.metrics.sources.broken"]}
    enable("approvals", "audit")
    names = {name for name, _ in scrape()}
    assert names == {"simpletuner_audit_log_entries_total", "simpletuner_audit_log_entries_24h"}


class TestToken:
    @pytest.fixture(autouse=True)
    def token(self, monkeypatch: pytest.MonkeyPatch, enable) -> None:  # type: ignore[no-untyped-def]
        monkeypatch.setenv("SIMPLETUNER_METRICS_TOKEN", "s3cret-scrape-token")
        enable("jobs")

    def test_a_scrape_without_the_token_is_401(self, anon: APIClient) -> None:
        response = anon.get(PROMETHEUS_PATH)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert b"simpletuner_" not in response.content

    @pytest.mark.parametrize(
        "header",
        ["Bearer wrong", "Bearer s3cret-scrape-token-and-more", "Basic s3cret-scrape-token", "s3cret-scrape-token"],
    )
    def test_a_wrong_token_is_401(self, anon: APIClient, header: str) -> None:
        assert anon.get(PROMETHEUS_PATH, HTTP_AUTHORIZATION=header).status_code == 401

    def test_the_right_token_scrapes(self, anon: APIClient) -> None:
        response = anon.get(PROMETHEUS_PATH, HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
        assert response.status_code == 200
        assert b"simpletuner_jobs_total" in response.content

    def test_a_staff_api_key_is_not_the_metrics_token(self, staff_client: APIClient) -> None:
        assert staff_client.get(PROMETHEUS_PATH).status_code == 401

    def test_the_token_is_checked_before_revealing_whether_export_is_enabled(
        self, anon: APIClient, staff_client: APIClient
    ) -> None:
        staff_client.put("/api/cloud/metrics/config", {"prometheus_enabled": False}, format="json")
        assert anon.get(PROMETHEUS_PATH).status_code == 401
        assert anon.get(PROMETHEUS_PATH, HTTP_AUTHORIZATION="Bearer s3cret-scrape-token").status_code == 404


def test_a_secret_store_that_cannot_be_read_fails_closed(  # type: ignore[no-untyped-def]
    anon: APIClient, enable, settings: SettingsWrapper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    enable("jobs")
    monkeypatch.delenv("SIMPLETUNER_METRICS_TOKEN", raising=False)
    store = tmp_path / "secrets.json"
    store.write_text(json.dumps({"SIMPLETUNER_METRICS_TOKEN": "from-the-file"}))
    store.chmod(0o644)  # refused by the file store: the token may be there, we cannot tell
    settings.SIMPLETUNER_SECRETS_FILE = store
    response = anon.get(PROMETHEUS_PATH)
    assert response.status_code == 503
    assert b"simpletuner_" not in response.content
    store.chmod(0o600)
    secrets.reset()
    assert anon.get(PROMETHEUS_PATH).status_code == 401
    assert anon.get(PROMETHEUS_PATH, HTTP_AUTHORIZATION="Bearer from-the-file").status_code == 200
