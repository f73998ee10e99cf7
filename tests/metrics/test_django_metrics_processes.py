"""Django's metrics in real server processes: each process reports its own requests (the
`instance` label tells them apart), unlike the simpletuner_* totals any process reports."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from cloudops.metrics.services import metrics_config_update
from tests.metrics.live import servers
from tests.metrics.scrape import PROMETHEUS_PATH, samples

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LIVE_200 = (
    "django_http_responses_total_by_status_view_method_total",
    (("method", "GET"), ("status", "200"), ("view", "health-live")),
)


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(base + PROMETHEUS_PATH, timeout=10)
    assert response.status_code == 200, response.text
    return samples(response.text)


def test_each_process_reports_its_own_requests(tmp_path: Path) -> None:
    metrics_config_update(prometheus_enabled=True, prometheus_categories=["django"])
    with ExitStack() as stack:
        first, second = stack.enter_context(servers(2, tmp_path))
        # Each follows the configuration at its first scrape (or its metrics thread's pass);
        # the start-up wait for readiness may have been counted already.
        before = {base: scrape(base).get(LIVE_200, 0) for base in (first, second)}
        for _ in range(3):
            assert httpx.get(first + "/api/cloud/health/live").status_code == 200
        for _ in range(5):
            assert httpx.get(second + "/api/cloud/health/live").status_code == 200
        assert scrape(first)[LIVE_200] == before[first] + 3
        assert scrape(second)[LIVE_200] == before[second] + 5


def test_a_process_stops_recording_when_the_category_is_turned_off(tmp_path: Path) -> None:
    metrics_config_update(prometheus_enabled=True, prometheus_categories=["django"])
    with servers(1, tmp_path) as (base,):
        before = scrape(base).get(LIVE_200, 0)
        assert httpx.get(base + "/api/cloud/health/live").status_code == 200
        assert scrape(base)[LIVE_200] == before + 1
        metrics_config_update(prometheus_categories=["http"])
        assert httpx.get(base + PROMETHEUS_PATH).status_code == 200  # follows: off
        assert httpx.get(base + "/api/cloud/health/live").status_code == 200
        metrics_config_update(prometheus_categories=["django"])
        assert scrape(base)[LIVE_200] == before + 1
