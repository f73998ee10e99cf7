"""Health: liveness (no I/O), readiness (cheap checks) and the full component document.

A check is a function returning a `Component`, or None when the thing it checks is not
configured. settings.HEALTH_CHECKS and settings.READINESS_CHECKS list them by dotted path,
so a feature adds its component with one line there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils.module_loading import import_string
from django.views.decorators.http import require_safe
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

import cloudops
from cloudops import secrets
from cloudops.structured_logging import get_logger

logger = get_logger("cloudops.health")

Status = Literal["healthy", "degraded", "unhealthy"]
_RANK: dict[str, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}

# Uptime counts from process start (this module is imported during start-up).
PROCESS_STARTED = time.monotonic()


@dataclass
class Component:
    name: str
    status: Status
    message: str
    latency_ms: float | None = None
    # Internal error text: shown to staff only, never to anonymous callers.
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, *, internal: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "message": self.message,
        }
        if self.details:
            data["details"] = self.details
        if internal and self.error:
            data["error"] = self.error
        return data


Check = Callable[[], "Component | None"]


def elapsed_ms(started: float) -> float:
    """Milliseconds since `started` (a time.perf_counter() reading), as health reports latency."""
    return round((time.perf_counter() - started) * 1000, 2)


def _timed(name: str, fn: Callable[[], str]) -> Component:
    started = time.perf_counter()
    try:
        message = fn()
    except Exception as exc:  # a check must report, never raise
        latency = elapsed_ms(started)
        logger.warning("health check %s failed", name, exc_info=True)
        return Component(name, "unhealthy", f"{name} unavailable", latency, error=f"{type(exc).__name__}: {exc}")
    return Component(name, "healthy", message, elapsed_ms(started))


def check_database() -> Component:
    def probe() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return f"{connection.vendor.replace('sqlite', 'SQLite')} database accessible"

    return _timed("database", probe)


def required_secrets() -> list[str]:
    """SIMPLETUNER_REQUIRED_SECRETS plus the keys the features in HEALTH_SECRET_REQUIREMENTS
    need right now (e.g. REPLICATE_API_TOKEN only while the replicate provider is enabled)."""
    keys = list(settings.SIMPLETUNER_REQUIRED_SECRETS)
    for path in settings.HEALTH_SECRET_REQUIREMENTS:
        keys += [key for key in _load(path)() if key not in keys]
    return keys


def check_secrets() -> Component:
    """Which provider supplied each required secret (never the value), and which are down.

    Degraded (not unhealthy: the server still serves) while a configured provider is
    unavailable or a required key is missing. Provider names are public; their error text
    goes to `error`, which only staff see.
    """
    started = time.perf_counter()
    report = secrets.secrets_check(required=required_secrets())
    latency = elapsed_ms(started)
    details = {
        "sources": {k.key: k.source for k in report.keys},
        "providers": {p.name: "ok" if p.reachable else "unavailable" for p in report.providers},
    }
    problems = []
    if report.unavailable:
        problems.append("Unavailable: " + ", ".join(p.name for p in report.unavailable))
    if report.missing:
        problems.append("Not configured: " + ", ".join(report.missing))
    error = "; ".join(f"{p.name}: {p.error}" for p in report.unavailable) or None
    if problems:
        return Component("secrets", "degraded", "; ".join(problems), latency, error=error, details=details)
    count = len(report.keys)
    message = (
        "API token configured"
        if count == 1
        else f"{count} required secrets configured"
        if count
        else "No secrets required by the enabled providers"
    )
    return Component("secrets", "healthy", message, latency, details=details)


@cache
def _load(path: str) -> Check:
    return import_string(path)


def run_checks(paths: list[str]) -> list[Component]:
    components = []
    for path in paths:
        component = _load(path)()
        if component is not None:
            components.append(component)
    return components


def overall_status(components: list[Component]) -> Status:
    worst = max((_RANK[c.status] for c in components), default=0)
    return next(status for status, rank in _RANK.items() if rank == worst)  # type: ignore[return-value]


def uptime_seconds() -> float:
    return round(time.monotonic() - PROCESS_STARTED, 1)


def health_document(components: list[Component], *, internal: bool) -> dict[str, Any]:
    return {
        "status": overall_status(components),
        "version": cloudops.__version__,
        "uptime_seconds": uptime_seconds(),
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "components": [c.as_dict(internal=internal) for c in components],
    }


# --- Views -------------------------------------------------------------------------------------


@require_safe
def live(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. No I/O, so a slow database never restarts the pod."""
    return JsonResponse({"status": "ok"})


@require_safe
def ready(request: HttpRequest) -> JsonResponse:
    failing = [c.name for c in run_checks(settings.READINESS_CHECKS) if c.status == "unhealthy"]
    if failing:
        return JsonResponse({"status": "not_ready", "failing": failing}, status=503)
    return JsonResponse({"status": "ready"})


class HealthView(APIView):
    """The full health document. Anyone may read it; only staff see internal error text."""

    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        components = run_checks(settings.HEALTH_CHECKS)
        if request.query_params.get("include_providers", "").lower() in ("1", "true", "yes"):
            components += run_checks(settings.PROVIDER_HEALTH_CHECKS)
        internal = bool(request.user and request.user.is_staff)
        document = health_document(components, internal=internal)
        return Response(document, status=503 if document["status"] == "unhealthy" else 200)
