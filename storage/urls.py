"""URL routes of this app, included from cloudops/urls.py: S3 path-style addressing."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, re_path

from storage import views

urlpatterns: list[URLPattern | URLResolver] = [
    re_path(r"^api/cloud/storage/?$", views.service, name="storage-service"),
    re_path(r"^api/cloud/storage/(?P<bucket>[^/]+)/?$", views.bucket, name="storage-bucket"),
    # (?s): a key may contain any character the key checks then accept or refuse with an S3 error.
    re_path(r"(?s)^api/cloud/storage/(?P<bucket>[^/]+)/(?P<key>.+)$", views.object_, name="storage-object"),
]
