"""The metrics configuration (one row) and the instance-wide HTTP request counters."""

from __future__ import annotations

from django.db import models

from cloudops.metrics.categories import default_categories


class MetricsConfig(models.Model):
    """What the scrape endpoint exports. A singleton (pk=1), edited in the admin or the API
    through cloudops.metrics.services so every change is audited."""

    prometheus_enabled = models.BooleanField(default=False)
    prometheus_categories = models.JSONField(default=default_categories, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        verbose_name = "metrics configuration"
        verbose_name_plural = "metrics configuration"

    def __str__(self) -> str:
        state = "enabled" if self.prometheus_enabled else "disabled"
        return f"Prometheus export {state}: {', '.join(self.prometheus_categories) or 'no categories'}"


class HttpRouteStat(models.Model):
    """Requests served per endpoint label and status code, summed over every server process.

    Each process counts in memory and adds its deltas here every few seconds
    (cloudops.metrics.http), so any process's scrape reports the whole instance. Values
    only grow: they back the http counters.
    """

    endpoint = models.CharField(max_length=255)
    status = models.PositiveSmallIntegerField()
    requests = models.BigIntegerField(default=0)
    latency_ms_sum = models.FloatField(default=0.0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["endpoint", "status"], name="http_route_stat_endpoint_status")]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.status}: {self.requests}"
