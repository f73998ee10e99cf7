"""The Django equivalent of the guide's FastAPI webhook handler (docs/python-scripts.md), in
this process on the suite's database: the preset admits 100 requests a minute per client and
never counts a request the middleware already counted."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from cloudops.ratelimit.limiter import webhook_rate_limiter
from cloudops.ratelimit.middleware import RateLimitMiddleware
from tests.compat.guide import page_block

CLIENT = "203.0.113.21"


def documented_view() -> Any:
    namespace: dict[str, Any] = {}
    exec(page_block("async def handle_webhook("), namespace)
    return namespace["handle_webhook"]


@pytest.mark.django_db
def test_the_view_admits_the_presets_limit_then_answers_429() -> None:
    view = async_to_sync(documented_view())
    factory = RequestFactory()
    codes = [view(factory.post("/hooks/replicate", REMOTE_ADDR=CLIENT), "replicate").status_code for _ in range(101)]
    assert codes == [200] * 100 + [429]
    assert webhook_rate_limiter.get_usage_sync(CLIENT)["count"] == 100


@pytest.mark.django_db
def test_behind_the_middleware_the_view_does_not_count_the_request_twice() -> None:
    view = documented_view()

    async def url_route(request: HttpRequest) -> HttpResponse:
        return await view(request, "replicate")  # what the URL resolver passes

    middleware = RateLimitMiddleware(url_route)
    response = async_to_sync(middleware)(RequestFactory().post("/api/webhooks/replicate", REMOTE_ADDR=CLIENT))
    assert response.status_code == 200
    assert webhook_rate_limiter.get_usage_sync(CLIENT)["count"] == 1
