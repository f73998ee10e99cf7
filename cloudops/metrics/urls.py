"""URL routes of the metrics app, included from cloudops/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from cloudops.metrics import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/cloud/metrics/config", views.MetricsConfigView.as_view(), name="metrics-config"),
    path(
        "api/cloud/metrics/config/templates/<str:template>",
        views.MetricsTemplateView.as_view(),
        name="metrics-config-template",
    ),
    path("api/cloud/metrics/config/preview", views.MetricsPreviewView.as_view(), name="metrics-config-preview"),
    path("api/cloud/metrics/prometheus", views.prometheus, name="metrics-prometheus"),
]
