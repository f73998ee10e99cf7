from __future__ import annotations

from django.apps import AppConfig


class MetricsAppConfig(AppConfig):
    name = "cloudops.metrics"
    label = "metrics"
    verbose_name = "Metrics"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from cloudops.metrics import checks  # noqa: F401 - registers the system checks
        from cloudops.metrics.django_process import install_query_counter

        # Every connection counts its queries while the `django` category is exported.
        connection_created.connect(install_query_counter, dispatch_uid="cloudops.metrics.django_queries")
