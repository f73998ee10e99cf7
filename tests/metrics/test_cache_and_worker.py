"""Cached aggregates and the server's metrics thread: what keeps a scrape cheap."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.cache import cache
from pytest_django.fixtures import Settings as SettingsWrapper

from cloudops.metrics.http import http_flush, http_record
from cloudops.metrics.models import HttpRouteStat
from cloudops.metrics.worker import metrics_worker_pass
from providers.models import Job
from tests.metrics.scrape import Scraper

pytestmark = pytest.mark.django_db


@pytest.fixture
def cached_for_a_minute(settings: SettingsWrapper) -> None:
    settings.SIMPLETUNER_METRICS_CACHE_SECONDS = 60
    cache.clear()


@pytest.fixture
def cached_for_two_seconds(settings: SettingsWrapper) -> None:
    settings.SIMPLETUNER_METRICS_CACHE_SECONDS = 2
    cache.clear()


def test_a_scrape_serves_the_cached_job_aggregates_until_the_worker_refreshes_them(  # type: ignore[no-untyped-def]
    cached_for_two_seconds: None, scrape: Scraper, enable, alice: AbstractUser
) -> None:
    enable("jobs")
    assert scrape.value("simpletuner_jobs_total") == 0
    Job.objects.create(owner=alice, provider="local")
    assert scrape.value("simpletuner_jobs_total") == 0
    # A value younger than half the cache age is left alone by the worker ...
    metrics_worker_pass(refresh=True)
    assert scrape.value("simpletuner_jobs_total") == 0
    # ... and recomputed once past it, before any scrape would have to.
    time.sleep(1.1)
    metrics_worker_pass(refresh=True)
    assert scrape.value("simpletuner_jobs_total") == 1


def test_the_worker_leaves_the_cache_alone_while_the_export_is_off(  # type: ignore[no-untyped-def]
    cached_for_a_minute: None, alice: AbstractUser
) -> None:
    metrics_worker_pass(refresh=True)
    assert cache.get("cloudops:metrics:jobs") is None


def test_a_worker_pass_adds_this_process_requests_to_the_database() -> None:
    http_record("GET_/api/cloud/jobs", 200, 3.0)
    http_record("GET_/api/cloud/jobs", 200, 5.0)
    http_record("GET_/api/cloud/jobs", 401, 1.0)
    metrics_worker_pass(refresh=False)
    rows = {(r.endpoint, r.status): (r.requests, r.latency_ms_sum) for r in HttpRouteStat.objects.all()}
    assert rows == {("GET_/api/cloud/jobs", 200): (2, 8.0), ("GET_/api/cloud/jobs", 401): (1, 1.0)}
    # Flushed deltas add up; nothing is counted twice.
    http_record("GET_/api/cloud/jobs", 200, 2.0)
    assert http_flush() == 1
    assert HttpRouteStat.objects.get(status=200).requests == 3
    assert http_flush() == 0
