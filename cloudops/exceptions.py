"""Uniform JSON errors: every error body has a human-readable `detail`."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from cloudops.auditing import AuditRefused
from cloudops.middleware import AUDIT_REFUSED


def _flatten(errors: Any, prefix: str = "") -> list[str]:
    if isinstance(errors, dict):
        return [m for key, value in errors.items() for m in _flatten(value, f"{prefix}{key}.")]
    if isinstance(errors, list):
        return [m for item in errors for m in _flatten(item, prefix)]
    field = prefix.rstrip(".")
    return [f"{field}: {errors}" if field and field != "non_field_errors" else str(errors)]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, with validation errors summarised in `detail` and kept in `errors`."""
    if isinstance(exc, AuditRefused):
        # The audit trail fails closed (no key, wrong key, tampered head): the action is
        # refused because it could not be recorded verifiably. The reason is in the logs
        # and, for staff, in the health document; never in this response.
        return Response({"detail": AUDIT_REFUSED}, status=503)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": "; ".join(_flatten(exc.detail)), "errors": exc.detail}
    return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """JSON 404 for API paths; Django's page for the admin and everything else."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception or Http404())


def server_error(request: HttpRequest) -> JsonResponse:
    # Never internal error text: the correlation id lets an operator find the traceback.
    return JsonResponse(
        {"detail": "Internal server error.", "correlation_id": getattr(request, "correlation_id", None)},
        status=500,
    )
