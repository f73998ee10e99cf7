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
from functools import cache, wraps
from typing import Any, Literal, TypeVar

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.utils.module_loading import import_string
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import APIException
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

import cloudops
from cloudops import background, secrets
from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.health")

Status = Literal["healthy", "degraded", "unhealthy"]
_RANK: dict[Status, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}

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
_Result = TypeVar("_Result", "Component", "Component | None")


def elapsed_ms(started: float) -> float:
    """Milliseconds since `started` (a time.perf_counter() reading), as health reports latency."""
    return round((time.perf_counter() - started) * 1000, 2)


def failed(name: str, started: float, exc: Exception, message: str | None = None) -> Component:
    """The component of a check that raised: unhealthy, with a public reason (what failed, not
    the exception's text, which may name hosts or users) and the exception for staff."""
    down = isinstance(exc, DatabaseError)
    # A database outage is one line per probe; anything else may be a bug: its traceback.
    logger.warning("health check %s failed: %s: %s", name, type(exc).__name__, exc, exc_info=not down)
    if message is None:
        message = f"{name} cannot be checked: " + ("the database is unavailable" if down else "the check failed")
    return Component(name, "unhealthy", message, elapsed_ms(started), error=f"{type(exc).__name__}: {exc}")


def guarded(name: str) -> Callable[[Callable[[], _Result]], Callable[[], _Result]]:
    """Decorate a check so it reports its own failure as the unhealthy component `name`
    (e.g. its database reads while the database is down) instead of raising: the health
    document answers 503 with every component, never a 500."""

    def decorate(check: Callable[[], _Result]) -> Callable[[], _Result]:
        @wraps(check)
        def run() -> _Result:
            started = time.perf_counter()
            try:
                return check()
            except Exception as exc:  # a check must report, never raise
                return failed(name, started, exc)

        return run

    return decorate


def _timed(name: str, fn: Callable[[], str]) -> Component:
    started = time.perf_counter()
    try:
        message = fn()
    except Exception as exc:  # a check must report, never raise
        return failed(name, started, exc, f"{name} unavailable")
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


@guarded("secrets")
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


@guarded("background")
def check_background() -> Component | None:
    """This process's background loops (cloudops.background): unhealthy if one's thread is
    gone, degraded if one has not completed a pass for several intervals. None in a process
    that runs none (management commands)."""
    states = background.loops()
    if not states:
        return None
    now = time.time()
    details = {
        s.name: {
            "running": s.alive,
            "last_success_age_s": round(now - s.last_success, 1) if s.last_success else None,
            "failures_in_a_row": s.failures_in_a_row,
        }
        for s in states
    }
    error = "; ".join(f"{s.name}: {s.last_error}" for s in states if s.failures_in_a_row) or None
    dead = [s.name for s in states if not s.alive]
    if dead:
        message = "Not running: " + ", ".join(dead) + " (restart this server process)"
        return Component("background", "unhealthy", message, 0.0, error=error, details=details)
    late = [s for s in states if s.lateness(now) > 0]
    if late:
        message = "Late: " + ", ".join(f"{s.name} ({s.failures_in_a_row} failed passes in a row)" for s in late)
        return Component("background", "degraded", message, 0.0, error=error, details=details)
    return Component("background", "healthy", f"{len(states)} background loops on time", 0.0, details=details)


@cache
def _load(path: str) -> Callable[[], Any]:
    return import_string(path)


def run_checks(paths: list[str]) -> list[Component]:
    """The components of the checks at `paths`. Each check reports its own failure (`guarded`);
    one that raises anyway is reported unhealthy under its function's name, never a 500.

    They run on a new database connection: the one a request thread keeps (CONN_MAX_AGE) can
    answer from its own cache for a database that a new connection cannot open (a SQLite file
    rewritten under the server, a revoked password). A health request costs one connect."""
    if not connection.in_atomic_block:
        connection.close()
    components = []
    for path in paths:
        started = time.perf_counter()
        try:
            component = _load(path)()
        except Exception as exc:
            component = failed(path.rsplit(".", 1)[-1].removeprefix("check_"), started, exc)
        if component is not None:
            components.append(component)
    return components


def overall_status(components: list[Component]) -> Status:
    worst = max((_RANK[c.status] for c in components), default=0)
    return next(status for status, rank in _RANK.items() if rank == worst)


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


class ComponentOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=list(_RANK))
    latency_ms = serializers.FloatField(allow_null=True)
    message = serializers.CharField()
    details = serializers.DictField(required=False)
    error = serializers.CharField(required=False, help_text="staff only: the internal error text")


class HealthOutputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=list(_RANK))
    version = serializers.CharField()
    uptime_seconds = serializers.FloatField()
    timestamp = serializers.DateTimeField()
    components = ComponentOutputSerializer(many=True)


class HealthQuerySerializer(serializers.Serializer):
    include_providers = serializers.BooleanField(
        required=False, default=False, help_text="add a live check of each provider (true/false, 1/0, yes/no)"
    )


class HealthView(APIView):
    """The full health document. Anyone may read it; only staff see internal error text.
    200 while healthy or degraded, 503 while unhealthy (the same document)."""

    permission_classes = [AllowAny]

    def perform_authentication(self, request: Request) -> None:
        """Lazy: who is asking is resolved by _is_staff, which survives a broken database."""

    @extend_schema(
        parameters=[HealthQuerySerializer], responses={200: HealthOutputSerializer, 503: HealthOutputSerializer}
    )
    def get(self, request: Request) -> Response:
        query = HealthQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        components = run_checks(settings.HEALTH_CHECKS)
        if query.validated_data["include_providers"]:
            components += run_checks(settings.PROVIDER_HEALTH_CHECKS)
        document = health_document(components, internal=_is_staff(request))
        return Response(document, status=503 if document["status"] == "unhealthy" else 200)


def _is_staff(request: Request) -> bool:
    """Whether the caller may see internal error text. Staff status alone, on purpose: that
    text is operator information about this server, not data of a model the admin guards with
    a permission. A credential that cannot be checked (an API key or session while the
    database is down) is answered as anyone is, never with a 500."""
    try:
        return bool(request.user and request.user.is_staff)
    except APIException:
        raise  # a wrong key is still a 401
    except Exception:
        logger.warning("health: the caller's credentials could not be checked", exc_info=True)
        return False
