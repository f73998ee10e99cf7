from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from audit.views import AuditListView, AuditStatsView, AuditVerifyView
from cloudops import converters, health, hints, views

# Registered before the apps' URL modules are loaded (include() imports them below).
register_converter(converters.JobIdConverter, "job_id")
register_converter(converters.ProviderNameConverter, "provider")
register_converter(converters.IdConverter, "id")

handler404 = "cloudops.exceptions.not_found"
handler500 = "cloudops.exceptions.server_error"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/cloud/health", health.HealthView.as_view(), name="health"),
    path("api/cloud/health/live", health.live, name="health-live"),
    path("api/cloud/health/ready", health.ready, name="health-ready"),
    path("api/cloud/hints", hints.HintsView.as_view(), name="hints"),
    path("api/auth/login", views.LoginView.as_view(), name="auth-login"),
    path("api/auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    path("api/auth/register", views.RegisterView.as_view(), name="auth-register"),
    path("api/auth/api-keys", views.ApiKeyListView.as_view(), name="api-keys"),
    path("api/auth/api-keys/<id:key_id>", views.ApiKeyDetailView.as_view(), name="api-key-detail"),
    path("api/users/me", views.MeView.as_view(), name="users-me"),
    path("api/audit", AuditListView.as_view(), name="audit-list"),
    path("api/audit/verify", AuditVerifyView.as_view(), name="audit-verify"),
    path("api/audit/stats", AuditStatsView.as_view(), name="audit-stats"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("", include("providers.urls")),
    path("", include("storage.urls")),
    path("", include("governance.urls")),
    path("", include("notifications.urls")),
    path("", include("cloudops.metrics.urls")),
]
