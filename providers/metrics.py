"""The providers app's Prometheus metric sources (settings.METRICS_SOURCES names them).

- jobs: how many jobs, in which status, what they cost and how long they ran.
- provider: how much of each provider's cost limit is spent. `simpletuner_cost_limit_percent_used`
  is exported for providers with a cost limit enabled (a percentage of no limit means
  nothing). `simpletuner_credit_balance_usd` is exported for providers with a credit amount
  set (providers.credit: the amount minus the jobs completed since); neither `local` nor
  Replicate (no balance endpoint in its API) reports a balance of its own, so a provider
  without an amount has no series rather than a made-up number.
- circuit_breakers: each provider's breaker, shared by all processes (providers.circuit).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import Count, Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from cloudops.metrics.cache import cached
from providers.circuit import circuit_snapshot
from providers.config import provider_config_list
from providers.costs import cost_limit_status
from providers.credit import credit_status
from providers.models import ACTIVE_STATUSES, Job, JobStatus

# --- jobs ---------------------------------------------------------------------------------------


def job_aggregates() -> dict[str, Any]:
    """Per-status count, cost and run time: one grouped scan of the jobs table, cached."""
    return cached("jobs", _compute_job_aggregates)


def _compute_job_aggregates() -> dict[str, Any]:
    rows = (
        Job.objects.order_by()
        .values("status")
        # COUNT(*), not COUNT(id): every column read is in the job_status_costs index, so
        # the scan never touches the table.
        .annotate(n=Count("*"), cost=Sum("cost_usd"), run=Sum("run_seconds"), runs=Count("run_seconds"))
    )
    by_status = {status.value: 0 for status in JobStatus}
    cost, run, runs = 0.0, 0.0, 0
    for row in rows:
        by_status[row["status"]] = row["n"]
        cost += float(row["cost"] or 0)
        run += float(row["run"] or 0)
        runs += row["runs"]
    return {"by_status": by_status, "cost_usd": cost, "run_seconds": run, "runs": runs}


def collect_jobs() -> Iterator[Metric]:
    agg = job_aggregates()
    by_status = agg["by_status"]
    # Jobs are never deleted and a job's cost is set once, when it ends: both only grow.
    yield CounterMetricFamily("simpletuner_jobs_total", "Jobs submitted (all statuses).", value=sum(by_status.values()))
    gauge = GaugeMetricFamily("simpletuner_jobs_by_status", "Jobs currently in each status.", labels=["status"])
    for status, count in by_status.items():
        gauge.add_metric([status], count)
    yield gauge
    active = sum(count for status, count in by_status.items() if status in ACTIVE_STATUSES)
    yield GaugeMetricFamily(
        "simpletuner_jobs_active", "Jobs not yet finished (pending, uploading, queued, running).", value=active
    )
    yield CounterMetricFamily(
        "simpletuner_cost_usd_total", "Cost of all finished jobs, in USD.", value=round(agg["cost_usd"], 6)
    )
    if agg["runs"]:
        # Without a single finished job there is no average, rather than a made-up 0.
        yield GaugeMetricFamily(
            "simpletuner_job_duration_seconds_avg",
            "Average provider-reported run time of finished jobs, in seconds.",
            value=agg["run_seconds"] / agg["runs"],
        )


# --- provider -------------------------------------------------------------------------------------


def _percent_used() -> dict[str, float]:
    return {
        config.name: cost_limit_status(config).percent_used
        for config in provider_config_list()
        if config.cost_limit_enabled
    }


def collect_cost_limits() -> Iterator[Metric]:
    used = cached("provider_cost_limits", _percent_used)
    if not used:
        return
    gauge = GaugeMetricFamily(
        "simpletuner_cost_limit_percent_used",
        "Share of the provider's cost limit spent in the current period, in percent.",
        labels=["provider"],
    )
    for provider, percent in used.items():
        gauge.add_metric([provider], percent)
    yield gauge


def _credit_balances() -> dict[str, float]:
    balances = {}
    for config in provider_config_list():
        status = credit_status(config)
        if status is not None:
            balances[config.name] = float(status.balance_usd)
    return balances


def collect_credit_balances() -> Iterator[Metric]:
    balances = cached("provider_credit_balances", _credit_balances)
    if not balances:
        return
    gauge = GaugeMetricFamily(
        "simpletuner_credit_balance_usd",
        "Prepaid credit left at the provider, in USD: the amount set minus the jobs completed since.",
        labels=["provider"],
    )
    for provider, balance in balances.items():
        gauge.add_metric([provider], balance)
    yield gauge


# --- circuit_breakers -----------------------------------------------------------------------------


def collect_circuit_breakers() -> Iterator[Metric]:
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
