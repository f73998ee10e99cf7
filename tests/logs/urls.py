"""Test-only views for the request-context tests, mounted beside the real URLs."""

from __future__ import annotations

import asyncio
import logging

from django.http import HttpRequest, JsonResponse
from django.urls import path

from cloudops.structured_logging import LogContext, get_correlation_id, get_log_context
from cloudops.urls import urlpatterns as real_urlpatterns

logger = logging.getLogger("tests.logs")

# Requests wait here until this many are inside the view at once: proof that the
# middleware stack runs them concurrently rather than one after another.
BARRIER_SIZE = 8
_barrier: dict[str, asyncio.Barrier] = {}


async def concurrent_view(request: HttpRequest, tag: str) -> JsonResponse:
    barrier = _barrier.setdefault("b", asyncio.Barrier(BARRIER_SIZE))
    with LogContext(tag=tag):
        before = get_correlation_id()
        await asyncio.wait_for(barrier.wait(), timeout=10)
        logger.info("inside", extra={"step": "after-barrier"})
        return JsonResponse({"correlation_id": before, "after": get_correlation_id(), "context": get_log_context()})


def sync_view(request: HttpRequest) -> JsonResponse:
    logger.info("sync view")
    return JsonResponse({"correlation_id": get_correlation_id()})


def boom(request: HttpRequest) -> JsonResponse:
    raise RuntimeError("secret internals")


handler404 = "cloudops.exceptions.not_found"
handler500 = "cloudops.exceptions.server_error"

urlpatterns = [
    path("test/concurrent/<str:tag>", concurrent_view),
    path("test/sync", sync_view),
    path("test/boom", boom),
    *real_urlpatterns,
]
