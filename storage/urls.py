"""URL routes of this app, included from cloudops/urls.py: S3 path-style addressing."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, re_path

from storage import views

urlpatterns: list[URLPattern | URLResolver] = [
    re_path(r"^api/cloud/storage/?$", views.service, name="storage-service"),  # type: ignore[arg-type]  # async views
    re_path(r"^api/cloud/storage/(?P<bucket>[^/]+)/?$", views.bucket, name="storage-bucket"),  # type: ignore[arg-type]
    # [\s\S]: a key may contain any character (even a newline); the key checks then accept it
    # or refuse it with an S3 error, instead of a JSON 404 from Django.
    re_path(r"^api/cloud/storage/(?P<bucket>[^/]+)/(?P<key>[\s\S]+)$", views.object_, name="storage-object"),  # type: ignore[arg-type]
]
