"""http: requests, errors and average latency per endpoint, for the whole instance."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from cloudops.metrics.http import http_flush
from cloudops.metrics.models import HttpRouteStat


def collect() -> Iterator[Metric]:
    http_flush()  # this process's latest requests; the others flush on their own timer
    requests: dict[str, int] = defaultdict(int)
    latency: dict[str, float] = defaultdict(float)
    errors = CounterMetricFamily(
        "simpletuner_http_errors_total",
        "Responses with a 4xx or 5xx status, per endpoint and status.",
        labels=["endpoint_status"],
    )
    for stat in HttpRouteStat.objects.order_by("endpoint", "status"):
        requests[stat.endpoint] += stat.requests
        latency[stat.endpoint] += stat.latency_ms_sum
        if stat.status >= 400:
            errors.add_metric([f"{stat.endpoint}_{stat.status}"], stat.requests)
    total = CounterMetricFamily(
        "simpletuner_http_requests_total", "Requests served, per endpoint.", labels=["endpoint"]
    )
    average = GaugeMetricFamily(
        "simpletuner_http_request_latency_ms_avg",
        "Average time to respond, per endpoint, in milliseconds (since counting began).",
        labels=["endpoint"],
    )
    for endpoint, count in requests.items():
        total.add_metric([endpoint], count)
        average.add_metric([endpoint], round(latency[endpoint] / count, 3))
    yield total
    yield errors
    yield average
