"""Instance-wide rate-limit metrics, read from the state backend (so every process agrees).

`collect()` is meant for a custom Prometheus collector: the metrics endpoint calls it at
scrape time. A backend outage yields nothing rather than a wrong zero.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from cloudops.ratelimit.backends import state_backend
from cloudops.ratelimit.backends.base import BackendUnavailable
from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.ratelimit")


def collect() -> Iterable[Metric]:
    backend = state_backend()
    try:
        violations = backend.violations_total()
        tracked = backend.tracked_clients(now=time.time())
    except BackendUnavailable as exc:
        logger.warning("rate-limit metrics unavailable: %s", exc)
        return
    yield CounterMetricFamily(
        "simpletuner_rate_limit_violations_total",
        "Requests refused by rate limiting (all processes, since the state was created)",
        value=violations,
    )
    yield GaugeMetricFamily(
        "simpletuner_rate_limit_tracked_clients",
        "Clients (keys) with requests inside their current rate-limit window",
        value=tracked,
    )
