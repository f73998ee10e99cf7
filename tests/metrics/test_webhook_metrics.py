"""Webhooks feed the metrics: a delivery that finishes a job moves the job series, and the
webhook endpoint is counted under its route pattern, rejected deliveries as errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from providers.models import Job
from tests.metrics.scrape import Scraper

ROUTE = "POST_/api/webhooks/<str:provider>"


def test_a_webhook_that_finishes_a_job_moves_the_job_series(  # type: ignore[no-untyped-def]
    scrape: Scraper,
    enable,
    post_webhook: Callable[..., Any],
    local_job: Job,
) -> None:
    enable("jobs")
    before = scrape()
    assert before[("simpletuner_jobs_active", ())] == 1
    assert before[("simpletuner_jobs_by_status", (("status", "completed"),))] == 0

    for status in ("running", "completed"):
        event = {"job_id": local_job.pk, "type": "training.status", "data": {"status": status}}
        assert post_webhook("local", event).status_code == 200

    after = scrape()
    assert after[("simpletuner_jobs_active", ())] == 0
    assert after[("simpletuner_jobs_by_status", (("status", "completed"),))] == 1
    assert after[("simpletuner_jobs_total", ())] == 1


def test_webhook_deliveries_and_rejections_are_counted_by_route(  # type: ignore[no-untyped-def]
    scrape: Scraper,
    enable,
    post_webhook: Callable[..., Any],
    local_job: Job,
) -> None:
    enable("http")
    event = {"job_id": local_job.pk, "type": "training.status", "data": {"status": "running"}}
    assert post_webhook("local", event).status_code == 200
    assert post_webhook("local", event, sign=False).status_code == 401

    values = scrape()
    assert values[("simpletuner_http_requests_total", (("endpoint", ROUTE),))] == 2
    assert values[("simpletuner_http_errors_total", (("endpoint_status", f"{ROUTE}_401"),))] == 1
