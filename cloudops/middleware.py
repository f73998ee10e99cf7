"""Request context: correlation id in and out, and one access-log line per request."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

from cloudops.auditing import AuditRefused
from cloudops.converters import LABEL_AS
from cloudops.net import client_ip
from cloudops.structured_logging import correlation_scope, get_logger

access_log = get_logger("simpletuner.cloud.access")

REQUEST_ID_HEADER = "X-Request-ID"


def _incoming_id(request: HttpRequest) -> str | None:
    return request.headers.get("X-Request-ID") or request.headers.get("X-Correlation-ID")


_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>(?:[^()\\]|\\.)*\)")
_CONVERTER = re.compile(r"<(\w+):(\w+)>")


@functools.cache  # URL patterns are a small fixed set; both middlewares label every request
def route_label(route: str) -> str:
    """A URL pattern as a readable path: `<str:job_id>` stays, a regex group becomes `<bucket>`."""
    route = _REGEX_GROUP.sub(lambda m: f"<{m.group(1)}>", route)
    route = _CONVERTER.sub(lambda m: f"<{LABEL_AS.get(m.group(1), m.group(1))}:{m.group(2)}>", route)
    route = route.lstrip("^").rstrip("$")
    if route.endswith("/?"):
        route = route[:-2]
    return "/" + route.lstrip("/")


def request_route(request: HttpRequest) -> str | None:
    """The URL pattern that served the request (never the raw path with ids), or None."""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return None
    return route_label(match.route)


def _log_access(request: HttpRequest, response: HttpResponseBase, started: float, cid: str) -> None:
    response[REQUEST_ID_HEADER] = cid
    access_log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "method": request.method,
            "route": request_route(request) or "<unmatched>",
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "client_ip": client_ip(request),
        },
    )


GetResponse = Callable[[HttpRequest], "HttpResponseBase | Awaitable[HttpResponseBase]"]


class DualModeMiddleware:
    """A middleware that runs natively in sync and async stacks: subclasses write `sync_call`
    and `__acall__`. (One sync-only middleware would make Django run everything below it in
    its single sync thread; see cloudops/static.py.)"""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        if self._async:
            return self.__acall__(request)
        return self.sync_call(request)

    def sync_call(self, request: HttpRequest) -> HttpResponseBase:
        raise NotImplementedError

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        raise NotImplementedError


class RequestContextMiddleware(DualModeMiddleware):
    """Outermost middleware: takes a valid X-Request-ID / X-Correlation-ID or makes one,
    binds it to every log record of the request, returns it as X-Request-ID, and writes
    the access-log line."""

    def sync_call(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        with correlation_scope(_incoming_id(request)) as cid:
            request.correlation_id = cid  # type: ignore[attr-defined]
            response = self.get_response(request)
            _log_access(request, response, started, cid)  # type: ignore[arg-type]
        return response  # type: ignore[return-value]

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        with correlation_scope(_incoming_id(request)) as cid:
            request.correlation_id = cid  # type: ignore[attr-defined]
            response = await self.get_response(request)  # type: ignore[misc]
            _log_access(request, response, started, cid)
        return response


AUDIT_REFUSED = "The audit trail cannot be written, so this action was refused. See the audit health component."


class AuditRefusalMiddleware(DualModeMiddleware):
    """An action the audit trail refused (cloudops.auditing.AuditRefused: no key, a wrong key,
    a tampered head) is a 503 everywhere, as the API's exception handler answers it: the
    server cannot record the change right now, which is neither the client's fault nor a
    crash. Its transaction has rolled back; the reason is in the logs and the health document."""

    def sync_call(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)  # type: ignore[return-value]

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        return await self.get_response(request)  # type: ignore[misc]

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        if not isinstance(exception, AuditRefused):
            return None
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": AUDIT_REFUSED}, status=503)
        return HttpResponse(AUDIT_REFUSED, status=503, content_type="text/plain; charset=utf-8")
