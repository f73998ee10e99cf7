"""The real URLs plus a view that raises, for the Django metrics' exception counters."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from cloudops.urls import urlpatterns as real_urlpatterns


class Boom(RuntimeError):
    pass


def raising_view(request: HttpRequest) -> HttpResponse:
    raise Boom("a view that fails")


urlpatterns = [*real_urlpatterns, path("test/boom", raising_view, name="test-boom")]
