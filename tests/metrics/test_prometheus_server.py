"""A real Prometheus server (Debian's package) scrapes a real cloudops server."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from cloudops.metrics.services import metrics_config_update
from tests.metrics.live import servers
from tests.server.live import free_port, running_process
from tests.services import require_tool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TOKEN = "prometheus-scrape-token"
# The guide's scrape config, with a 1 s interval for the test and the optional bearer token.
CONFIG = """
scrape_configs:
  - job_name: 'simpletuner'
    static_configs:
      - targets: ['{target}']
    metrics_path: '/api/cloud/metrics/prometheus'
    scrape_interval: 1s
    authorization:
      type: Bearer
      credentials: '{token}'
"""


def query(base: str, promql: str) -> list[dict] | None:
    """The query's result, or None while Prometheus is still starting (503 until ready)."""
    response = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5)
    if response.status_code == 503:
        return None
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for_series(base: str, promql: str, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = query(base, promql)
        except httpx.TransportError:
            result = None
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"Prometheus recorded no {promql} within {timeout}s")


def test_prometheus_scrapes_up_and_the_jobs_total(tmp_path: Path) -> None:
    prometheus = require_tool("prometheus")
    metrics_config_update(prometheus_enabled=True, prometheus_categories=["jobs", "http", "health"])
    with servers(1, tmp_path, SIMPLETUNER_METRICS_TOKEN=TOKEN) as [base]:
        config = tmp_path / "prometheus.yml"
        config.write_text(CONFIG.format(target=base.removeprefix("http://"), token=TOKEN))
        port = free_port()
        argv = [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        # /-/ready answers 503 until Prometheus is ready; `query` waits that out.
        log = tmp_path / "prometheus.log"
        with running_process(argv, dict(os.environ), port, log, ready_path="/-/ready") as (api, _):
            [up] = wait_for_series(api, 'up{job="simpletuner"} == 1')
            assert up["value"][1] == "1"
            [jobs] = wait_for_series(api, 'simpletuner_jobs_total{job="simpletuner"}')
            assert jobs["value"][1] == "0"
            assert wait_for_series(api, 'simpletuner_jobs_by_status{status="running"}')
