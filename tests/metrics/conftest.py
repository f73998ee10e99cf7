"""Fixtures of the metrics tests: fresh aggregates on every scrape, a scrape helper."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from cloudops.metrics.django_process import _Exported
from cloudops.metrics.http import _pending
from cloudops.metrics.services import metrics_config_update
from tests.metrics.scrape import Scraper


@pytest.fixture(autouse=True)
def own_local_jobs_dir(local_jobs_dir: Path) -> None:
    """Every test here runs its local jobs in a directory of its own (tests/providers/cleanup.py)."""


@pytest.fixture(autouse=True)
def uncached(settings: SettingsWrapper) -> None:
    """Every scrape computes its aggregates (the cache has its own test)."""
    settings.SIMPLETUNER_METRICS_CACHE_SECONDS = 0


@pytest.fixture(autouse=True)
def empty_http_buffer() -> Iterator[None]:
    """Requests counted by an earlier test must not reach this test's database."""
    _pending.clear()
    yield
    _pending.clear()


@pytest.fixture(autouse=True)
def django_metrics_off() -> Iterator[None]:
    """Whether this process records Django's metrics is process state (it follows the
    configuration): no test leaves it on for the next."""
    yield
    _Exported.enabled = False


@pytest.fixture
def enable(db: None):  # type: ignore[no-untyped-def]
    def enable(*categories: str) -> None:
        metrics_config_update(prometheus_enabled=True, prometheus_categories=list(categories))

    return enable


@pytest.fixture
def scrape(anon: APIClient) -> Scraper:
    return Scraper(anon)
