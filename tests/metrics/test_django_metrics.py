"""The `django` category: django-prometheus's request and database metrics of this process,
in the same scrape, recorded only while the category is exported."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client
from rest_framework.test import APIClient

from cloudops.metrics.django_process import django_metrics_enabled
from cloudops.metrics.exposition import render
from tests.metrics.scrape import Scraper, samples
from tests.metrics.test_promtool import promtool_findings

pytestmark = pytest.mark.django_db

JOBS_401 = (
    "django_http_responses_total_by_status_view_method_total",
    (("method", "GET"), ("status", "401"), ("view", "jobs")),
)
JOBS_LATENCY = ("django_http_requests_latency_seconds_by_view_method_count", (("method", "GET"), ("view", "jobs")))


def django_samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """This process's django_* values now, whether or not they are exported."""
    return samples(render(["django"]).decode())


def queries(values: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    return sum(
        v
        for (name, labels), v in values.items()
        if name == "django_db_execute_total" and ("alias", "default") in labels
    )


def test_the_category_is_in_the_scrape_when_enabled(anon: APIClient, scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
    enable("jobs", "django")
    before = scrape()  # the scrape makes this process follow the configuration
    assert django_metrics_enabled()
    assert anon.get("/api/cloud/jobs").status_code == 401
    after = scrape()
    assert after[JOBS_401] == before.get(JOBS_401, 0) + 1
    assert after[JOBS_LATENCY] == before.get(JOBS_LATENCY, 0) + 1
    assert queries(after) > queries(before)  # the scrape's own configuration read, at least
    assert ("simpletuner_jobs_total", ()) in after  # the same scrape as the guide's categories
    assert all(name.startswith(("simpletuner_", "django_")) for name, _ in after)


def test_the_category_is_absent_when_not_enabled(scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
    enable("jobs", "http", "health")
    assert not [name for name, _ in scrape() if name.startswith("django_")]


def test_nothing_is_recorded_while_the_category_is_off(anon: APIClient, scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
    enable("django")
    scrape()
    enable("http")
    scrape()  # follows: off
    assert not django_metrics_enabled()
    before = django_samples()
    assert anon.get("/api/cloud/jobs").status_code == 401
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    after = django_samples()
    assert after.get(JOBS_401) == before.get(JOBS_401)
    assert queries(after) == queries(before)


@pytest.mark.urls("tests.metrics.django_urls")
@pytest.mark.server_errors_expected("the view raises on purpose")
def test_a_view_that_raises_is_counted_by_type_and_view(scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
    enable("django")
    before = scrape()
    assert Client(raise_request_exception=False).get("/test/boom").status_code == 500
    after = scrape()
    for key in (
        ("django_http_exceptions_total_by_type_total", (("type", "Boom"),)),
        ("django_http_exceptions_total_by_view_total", (("view", "test-boom"),)),
        ("django_http_responses_total_by_status_total", (("status", "500"),)),
    ):
        assert after[key] == before.get(key, 0) + 1, key


def test_a_failed_query_is_counted_by_type(scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
    enable("django")
    scrape()

    def errors() -> float:
        return sum(v for (name, labels), v in django_samples().items() if name == "django_db_errors_total")

    before = errors()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table_here")
    assert errors() == before + 1


def test_an_unknown_method_shares_one_latency_label(scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
    enable("django")
    scrape()
    Client().generic("FROBNICATE", "/api/cloud/jobs")
    methods = {dict(labels)["method"] for name, labels in django_samples() if name == JOBS_LATENCY[0]}
    assert "FROBNICATE" not in methods and "<invalid method>" in methods


@pytest.mark.urls("tests.metrics.django_urls")
@pytest.mark.server_errors_expected("the view raises on purpose")
def test_the_scrape_with_django_metrics_passes_promtool(
    staff_client: APIClient, anon: APIClient, scrape: Scraper, enable
) -> None:  # type: ignore[no-untyped-def]
    enable("django")
    scrape()
    # Every kind of sample: latency histograms, responses by status, an exception, queries.
    staff_client.get("/api/users/me")
    anon.get("/api/cloud/jobs")
    anon.get("/no/such/page")
    Client(raise_request_exception=False).get("/test/boom")
    text = scrape.text()
    assert "django_http_exceptions_total_by_view_total" in text and 'le="0.0005"' in text
    assert promtool_findings(text) == []


def test_the_full_template_includes_the_category_and_others_do_not(staff_client: APIClient) -> None:
    for template, included in (("minimal", False), ("standard", False), ("security", False), ("full", True)):
        response = staff_client.post(f"/api/cloud/metrics/config/templates/{template}")
        assert response.status_code == 200
        assert ("django" in response.json()["prometheus_categories"]) is included, template


def test_an_unknown_category_is_still_a_400_naming_it(staff_client: APIClient) -> None:
    response = staff_client.put(
        "/api/cloud/metrics/config", {"prometheus_categories": ["django", "djang0"]}, format="json"
    )
    assert response.status_code == 400
    assert "djang0" in response.content.decode()


def test_counters_and_histograms_have_no_created_series(anon: APIClient, scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
    enable("django")
    scrape()
    anon.get("/api/cloud/jobs")
    names = {name for name, _ in scrape()}
    assert "django_db_execute_total" in names
    assert not [name for name in names if name.endswith("_created")]
