"""Several server processes, one instance: a scrape of any of them reports the total."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from cloudops.metrics.services import metrics_config_update
from tests.metrics.live import servers
from tests.metrics.scrape import PROMETHEUS_PATH, samples

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def wait_for_value(base: str, name: str, labels: tuple[tuple[str, str], ...], expected: float) -> float:
    """Scrape until the sample reaches `expected` (other processes flush on their timer)."""
    deadline = time.monotonic() + 30
    value = None
    while time.monotonic() < deadline:
        value = samples(httpx.get(base + PROMETHEUS_PATH, timeout=10).text).get((name, labels))
        if value == expected:
            return value
        time.sleep(0.2)
    return value  # type: ignore[return-value]


def test_a_scrape_of_either_process_counts_both_processes_requests(tmp_path: Path) -> None:
    metrics_config_update(prometheus_enabled=True, prometheus_categories=["http"])
    with ExitStack() as stack:
        first, second = stack.enter_context(servers(2, tmp_path))
        for _ in range(5):
            assert httpx.get(first + "/api/cloud/jobs").status_code == 401
        for _ in range(7):
            assert httpx.get(second + "/api/cloud/jobs").status_code == 401
        labels = (("endpoint_status", "GET_/api/cloud/jobs_401"),)
        assert wait_for_value(first, "simpletuner_http_errors_total", labels, 12) == 12
        assert wait_for_value(second, "simpletuner_http_errors_total", labels, 12) == 12
        requests = samples(httpx.get(second + PROMETHEUS_PATH).text)
        assert requests[("simpletuner_http_requests_total", (("endpoint", "GET_/api/cloud/jobs"),))] == 12
