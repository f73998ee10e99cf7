"""Admin: the rules, the live rate-limit state of whichever backend is configured, whether a
client is blocked now, and resetting a key.

The page reads the state backend (Redis or the database), not just the table, so it shows
the same thing in both deployments. The rules are the middleware's as the settings configure
it (RATE_LIMIT_RULES, the defaults, the catch-all RATE_LIMIT_CALLS per RATE_LIMIT_PERIOD); a
middleware built with other arguments (`RateLimitMiddleware.configure(...)`) is not what this
page shows. A client is looked up through each rule's limiter (`get_usage_sync`, which reads
without counting). Resetting goes through `ratelimit_reset`, which audits.
"""

from __future__ import annotations

import ipaddress
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from cloudops.ratelimit.backends import state_backend
from cloudops.ratelimit.backends.base import BackendUnavailable
from cloudops.ratelimit.models import RateLimitBucket
from cloudops.ratelimit.rules import KEY_IP, Rule, build_rules
from cloudops.ratelimit.services import ratelimit_reset, ratelimit_state


def active_rules() -> tuple[Rule, ...]:
    """The middleware's rules, in the order it matches them; none when RATE_LIMIT_CALLS=0."""
    if settings.RATE_LIMIT_CALLS <= 0:
        return ()
    return build_rules(settings.RATE_LIMIT_RULES, settings.RATE_LIMIT_CALLS, settings.RATE_LIMIT_PERIOD)


def rule_row(rule: Rule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "pattern": rule.pattern or "(every other path)",
        "methods": ", ".join(sorted(rule.methods)) if rule.methods else "all",
        "limit": limit_text(rule),
        "outage": "let requests through" if rule.fails_open() else "refuse requests (503)",
        "per": "client IP" if rule.key == KEY_IP else f"{rule.key} key (job credential, else the IP)",
    }


def limit_text(rule: Rule) -> str:
    return f"{rule.calls} per {rule.period:g} s"


def parse_client(text: str) -> str:
    """An IP address as the middleware keys it; ValueError names the problem."""
    text = text.strip()
    if len(text) > 64:
        raise ValueError("client: at most 64 characters (an IPv4 or IPv6 address).")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"client: {text!r} is not an IP address (IPv4 or IPv6).") from None


def client_rows(client: str, rules: tuple[Rule, ...]) -> list[dict[str, Any]]:
    """Each IP-keyed rule's usage by `client` now, read without counting a request."""
    rows = []
    for rule in rules:
        if rule.key != KEY_IP:
            continue
        usage = rule.limiter.get_usage_sync(client)
        blocked = usage["remaining"] == 0
        rows.append(
            {
                "rule": rule.name,
                "limit": limit_text(rule),
                "count": usage["count"],
                "blocked": blocked,
                "retry_in": usage["reset_in_seconds"] if blocked else None,
            }
        )
    return rows


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
        rules = active_rules()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Rate-limit state",
            "rules": [rule_row(rule) for rule in rules],
            "backend": state_backend().name,
            "can_reset": self.has_change_permission(request),
            "client": request.GET.get("client", "")[:100],
        }
        try:
            context["rows"] = self._state_rows({rule.name: rule for rule in rules})
            status = self._check_client(request, rules, context)
        except BackendUnavailable as exc:
            context["error"], status = str(exc), 503
        return TemplateResponse(request, "admin/ratelimit/state.html", context, status=status)

    @staticmethod
    def _state_rows(rules: dict[str, Rule]) -> list[dict[str, Any]]:
        """Each key with live state, with its rule's limit and whether it is full (blocked)."""
        now, rows = time.time(), []
        for state in ratelimit_state():
            # Keys are "<rule name>:<client>"; a limiter an app made itself has no rule here.
            rule = rules.get(state.key.partition(":")[0])
            expires = datetime.fromtimestamp(state.expires_at, UTC)
            rows.append(
                {
                    "key": state.key,
                    "count": state.count,
                    "limit": limit_text(rule) if rule else "",
                    "blocked": rule is not None and state.count >= rule.calls,
                    "expires": expires,
                    "in": round(state.expires_at - now),
                }
            )
        return rows

    @staticmethod
    def _check_client(request: HttpRequest, rules: tuple[Rule, ...], context: dict[str, Any]) -> int:
        """Fills the "is this client blocked now" table for ?client=; 400 for a bad client."""
        if "client" not in request.GET:
            return 200
        try:
            client = parse_client(request.GET["client"])
        except ValueError as exc:
            context["client_error"] = str(exc)
            return 400
        context["client"], context["client_rows"] = client, client_rows(client, rules)
        return 200

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
