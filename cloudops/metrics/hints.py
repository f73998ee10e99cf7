"""Setup hints of the metrics app (listed in settings.HINT_SOURCES; see cloudops/hints.py)."""

from __future__ import annotations

from cloudops.hints import Hint
from cloudops.metrics.services import metrics_config_get


def metrics_export_hints() -> list[Hint]:
    if metrics_config_get().prometheus_enabled:
        return []
    message = "Prometheus metrics export is off: /api/cloud/metrics/prometheus answers 404 until it is enabled."
    return [Hint("metrics_export_off", "info", message, "metrics_export_off")]
