"""Request context: correlation id in and out, and one access-log line per request."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from cloudops.net import client_ip
from cloudops.structured_logging import correlation_scope, get_logger

access_log = get_logger("cloudops.access")

REQUEST_ID_HEADER = "X-Request-ID"


def _incoming_id(request: HttpRequest) -> str | None:
    return request.headers.get("X-Request-ID") or request.headers.get("X-Correlation-ID")


def request_route(request: HttpRequest) -> str:
    """The URL pattern that served the request (never the raw path with ids)."""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return "<unmatched>"
    return "/" + match.route.lstrip("^").rstrip("$")


def _log_access(request: HttpRequest, response: HttpResponseBase, started: float, cid: str) -> None:
    response[REQUEST_ID_HEADER] = cid
    access_log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "method": request.method,
            "route": request_route(request),
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "client_ip": client_ip(request),
        },
    )


class RequestContextMiddleware:
    """Outermost middleware: takes a valid X-Request-ID / X-Correlation-ID or makes one,
    binds it to every log record of the request, returns it as X-Request-ID, and writes
    the access-log line. Works natively in both sync and async stacks."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]):
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        if self._async:
            return self.__acall__(request)
        started = time.perf_counter()
        with correlation_scope(_incoming_id(request)) as cid:
            request.correlation_id = cid  # type: ignore[attr-defined]
            response = self.get_response(request)
            _log_access(request, response, started, cid)  # type: ignore[arg-type]
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        with correlation_scope(_incoming_id(request)) as cid:
            request.correlation_id = cid  # type: ignore[attr-defined]
            response = await self.get_response(request)  # type: ignore[misc]
            _log_access(request, response, started, cid)
        return response
