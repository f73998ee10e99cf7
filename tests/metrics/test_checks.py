"""METRICS_SOURCES is checked at start-up, not at the first scrape."""

from __future__ import annotations

from pytest_django.fixtures import Settings as SettingsWrapper

from cloudops.metrics.checks import check_metrics_sources


def test_the_shipped_sources_pass_the_check() -> None:
    assert check_metrics_sources() == []


def test_unknown_categories_and_unimportable_sources_are_errors(settings: SettingsWrapper) -> None:
    settings.METRICS_SOURCES = {
        "jobs": ["cloudops.metrics.sources.jobs.nothing_here"],
        "gpus": [],
        "audit": ["cloudops.metrics.categories.CATEGORIES"],
    }
    errors = {error.id: error.msg for error in check_metrics_sources()}
    assert errors["metrics.E001"] == "METRICS_SOURCES names unknown category 'gpus'"
    assert errors["metrics.E002"].startswith(
        "METRICS_SOURCES['jobs']: cannot import cloudops.metrics.sources.jobs.nothing_here"
    )
    assert errors["metrics.E003"] == "METRICS_SOURCES['audit']: cloudops.metrics.categories.CATEGORIES is not callable"
