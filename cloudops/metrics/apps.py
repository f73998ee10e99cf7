from __future__ import annotations

from django.apps import AppConfig


class MetricsAppConfig(AppConfig):
    name = "cloudops.metrics"
    label = "metrics"
    verbose_name = "Metrics"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from cloudops.metrics import checks  # noqa: F401 - registers the system checks
