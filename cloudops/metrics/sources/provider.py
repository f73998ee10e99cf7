"""provider: how much of each provider's cost limit is spent.

`simpletuner_cost_limit_percent_used` is exported for providers with a cost limit enabled
(a percentage of no limit means nothing). `simpletuner_credit_balance_usd` needs a provider
that reports a balance; neither `local` nor Replicate (no balance endpoint in its API) does,
so it is not exported rather than shown as a made-up number.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from cloudops.metrics.cache import cached
from providers.config import provider_config_list
from providers.costs import cost_limit_status


def _percent_used() -> dict[str, float]:
    return {
        config.name: cost_limit_status(config).percent_used
        for config in provider_config_list()
        if config.cost_limit_enabled
    }


def collect() -> Iterator[Metric]:
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
