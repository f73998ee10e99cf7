"""circuit_breakers: each provider's breaker, shared by all processes (providers.circuit)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from providers.circuit import circuit_snapshot


def collect() -> Iterator[Metric]:
    snapshot = circuit_snapshot()
    state = GaugeMetricFamily(
        "simpletuner_circuit_breaker_state",
        "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
        labels=["provider"],
    )
    failures = CounterMetricFamily(
        "simpletuner_circuit_breaker_failures_total",
        "Provider-side failures recorded by the circuit breaker.",
        labels=["provider"],
    )
    for breaker in snapshot:
        state.add_metric([breaker.provider], breaker.state_value)
        failures.add_metric([breaker.provider], breaker.failures_total)
    yield state
    yield failures
