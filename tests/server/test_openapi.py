from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_schema_lists_our_endpoints() -> None:
    response = Client().get("/api/schema/", headers={"Accept": "application/json"})
    assert response.status_code == 200
    paths = (
        response.json()["paths"]
        if response["Content-Type"].startswith("application/json")
        else response.content.decode()
    )
    for path in ("/api/auth/login", "/api/auth/api-keys", "/api/users/me", "/api/audit", "/api/cloud/health"):
        assert path in paths


def test_the_docs_ui_uses_only_our_own_static_files() -> None:
    html = Client().get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/" in html
    assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html
