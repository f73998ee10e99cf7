"""health: process uptime and the database round trip."""

from __future__ import annotations

import time
from collections.abc import Iterator

from django.db import connection
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from cloudops.health import uptime_seconds


def database_latency_ms() -> float:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return (time.perf_counter() - started) * 1000


def collect() -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "simpletuner_uptime_seconds", "Seconds since this server process started.", value=uptime_seconds()
    )
    yield GaugeMetricFamily(
        "simpletuner_health_database_latency_ms",
        "Round trip of a trivial query to the database, in milliseconds.",
        value=round(database_latency_ms(), 3),
    )
