"""URL routes of this app, included from cloudops/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from providers import stream, views

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/cloud/providers", views.ProviderListView.as_view(), name="providers"),
    path("api/cloud/providers/<provider:provider>", views.ProviderDetailView.as_view(), name="provider-detail"),
    # Existing SimpleTuner UIs call the /config path.
    path("api/cloud/providers/<provider:provider>/config", views.ProviderDetailView.as_view(), name="provider-config"),
    path("api/cloud/jobs", views.JobListView.as_view(), name="jobs"),
    path("api/cloud/jobs/submit", views.JobSubmitView.as_view(), name="jobs-submit"),
    path("api/cloud/jobs/<job_id:job_id>", views.JobDetailView.as_view(), name="job-detail"),
    path("api/cloud/jobs/<job_id:job_id>/cancel", views.JobCancelView.as_view(), name="job-cancel"),
    path("api/cloud/jobs/<job_id:job_id>/logs", views.JobLogsView.as_view(), name="job-logs"),
    path("api/cloud/jobs/<job_id:job_id>/outputs", views.JobOutputsView.as_view(), name="job-outputs"),
    path("api/webhooks/<provider:provider>", views.webhook, name="webhook"),
    path("api/events/stream", stream.event_stream, name="events-stream"),
]
