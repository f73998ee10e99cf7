"""Metric sources used by tests through settings.METRICS_SOURCES."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

AWKWARD_LABEL = 'say "hi"\\ and\nbye'


def awkward() -> Iterator[Metric]:
    gauge = GaugeMetricFamily("simpletuner_test_awkward", "A label value that needs escaping.", labels=["name"])
    gauge.add_metric([AWKWARD_LABEL], 1)
    yield gauge


def broken() -> Iterator[Metric]:
    raise RuntimeError("this source is broken")
