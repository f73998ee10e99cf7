"""The admin site: Django's, with what the rest of cloudops adds to every way in.

Logins through the admin's form are audited by the receivers in cloudops.accounts like any
other; this site adds what Django sends no signal for: a right password of an account the
admin refuses, and the password-change form (a wrong old password is a failed password
presentation; a changed password is audited in the change's transaction). Every
ModelAdmin registered here audits what it saves (audit/admin_changes.py).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.template.response import TemplateResponse
from django.utils import timezone

from audit.admin_changes import audited
from cloudops import audit_events as events
from cloudops import auditing
from cloudops.auditing import user_agent
from cloudops.health import overall_status, run_checks
from providers import dashboard as panels

# Why AdminAuthenticationForm refuses an account whose password was right.
_REFUSALS = {"invalid_login": "not staff", "inactive": "inactive"}


class AuditedAdminAuthenticationForm(AdminAuthenticationForm):
    def confirm_login_allowed(self, user: User) -> None:
        try:
            super().confirm_login_allowed(user)
        except ValidationError as exc:
            # authenticate() succeeded, so Django sent no signal: this is still a failed login.
            reason = _REFUSALS.get(exc.code or "", "refused")
            credentials = {"username": user.get_username()}
            user_login_failed.send(sender=type(self), credentials=credentials, request=self.request, reason=reason)
            raise


class CloudopsAdminSite(admin.AdminSite):
    site_header = "cloudops administration"
    site_title = "cloudops"
    index_title = "SimpleTuner cloud operations"
    login_form = AuditedAdminAuthenticationForm
    # "View site": there is no public site, so the API's interactive documentation.
    site_url = "/api/docs/"

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        # The index is the operations dashboard (templates/admin/index.html), above the app list.
        return super().index(request, {"dashboard": dashboard(request), **(extra_context or {})})

    def register(self, model_or_iterable: Any, admin_class: type | None = None, **options: Any) -> None:
        # Every ModelAdmin, ours and Django's own (users, groups), audits what it saves.
        super().register(model_or_iterable, audited(admin_class or admin.ModelAdmin), **options)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # One transaction: a login the audit trail refuses leaves no last_login behind either.
        with transaction.atomic():
            return super().login(request, extra_context)

    def password_change(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        # One transaction: a password change the audit trail refuses is rolled back.
        with transaction.atomic():
            response = super().password_change(request, extra_context)
            if request.method == "POST":
                _audit_password_change(request, response)
        return response


def _audit_password_change(request: HttpRequest, response: HttpResponseBase) -> None:
    if response.status_code == 302:  # PasswordChangeView redirects once the password is saved
        auditing.record(
            event_type=events.AUTH_PASSWORD_CHANGED,
            request=request,
            target_type="user",
            target_id=request.user.pk or "",
            details={"user_agent": user_agent(request), "path": request.path[:200]},
        )
        return
    form = (getattr(response, "context_data", None) or {}).get("form")
    if form is not None and form.has_error("old_password", "password_incorrect"):
        credentials = {"username": request.user.get_username()}
        user_login_failed.send(
            sender=CloudopsAdminSite, credentials=credentials, request=request, reason="wrong old password"
        )


def dashboard(request: HttpRequest) -> dict[str, Any]:
    """The dashboard's panels. Health is every staff user's, as the health document's internal
    error text is (cloudops.health); each other panel needs the view permission of what it
    shows, as the admin's pages do. A dozen aggregate queries, whatever the tables hold."""
    user = request.user
    now = timezone.now()
    components = run_checks(settings.HEALTH_CHECKS)
    context: dict[str, Any] = {"health": components, "health_status": overall_status(components)}
    if user.has_perm("providers.view_job"):
        tz = timezone.get_current_timezone()
        days = panels.jobs_per_day(now=now, tz=tz)
        context["jobs"] = {"days": days, "chart": panels.jobs_chart(days, tz_name=str(tz)), "tz": str(tz)}
        context["failed_jobs"] = panels.recent_failed_jobs()
    if user.has_perm("providers.view_providerconfig"):
        context["spend"] = [(s, panels.spend_meter(s)) for s in panels.spend_per_provider(now=now)]
    if user.has_perm("audit.view_auditentry"):
        traffic = panels.webhook_traffic(now=now)
        chart = panels.webhooks_chart(traffic)
        context["webhooks"] = {
            "traffic": traffic,
            "chart": chart,
            "replay_minutes": panels.replay_minutes(),
            "other": panels.OTHER,
        }
    return context
