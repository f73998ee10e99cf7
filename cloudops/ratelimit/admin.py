"""Admin: the live rate-limit state of whichever backend is configured, and resetting a key.

The page reads the state backend (Redis or the database), not just the table, so it shows
the same thing in both deployments. Resetting goes through `ratelimit_reset`, which audits.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from cloudops.ratelimit.backends import state_backend
from cloudops.ratelimit.backends.base import BackendUnavailable
from cloudops.ratelimit.models import RateLimitBucket
from cloudops.ratelimit.services import ratelimit_reset, ratelimit_state


@admin.register(RateLimitBucket)
class RateLimitStateAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # State is never edited by hand: a key is only reset (the list's button).
        return obj is None and super().has_change_permission(request)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._reset(request)
        now = time.time()
        error, rows = None, []
        try:
            for state in ratelimit_state():
                expires = datetime.fromtimestamp(state.expires_at, UTC)
                rows.append(
                    {"key": state.key, "count": state.count, "expires": expires, "in": round(state.expires_at - now)}
                )
        except BackendUnavailable as exc:
            error = str(exc)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Rate-limit state",
            "rows": rows,
            "error": error,
            "backend": state_backend().name,
            "can_reset": self.has_change_permission(request),
        }
        return TemplateResponse(request, "admin/ratelimit/state.html", context)

    def _reset(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        key = request.POST.get("key", "").strip()
        if not key:
            messages.error(request, "No key given: choose the key to reset.")
        else:
            try:
                existed = ratelimit_reset(key=key, request=request)
            except BackendUnavailable as exc:
                messages.error(request, f"The rate-limit backend is unavailable: {exc}")
            else:
                messages.success(request, f"Reset {key}." if existed else f"{key} had no state (nothing to reset).")
        return HttpResponseRedirect(reverse("admin:ratelimit_ratelimitbucket_changelist"))
