"""Swagger UI's "Authorize" takes an API key: the schema declares a bearer scheme (and the
X-API-Key header) beside the session cookie on every authenticated operation, and a request
made as the docs page makes it, with the key, works."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from cloudops.apikeys import api_key_create

pytestmark = pytest.mark.django_db

METHODS = {"get", "post", "put", "patch", "delete"}


def schema() -> dict[str, Any]:
    response = Client().get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})
    assert response.status_code == 200
    return response.json()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_the_schema_declares_a_bearer_scheme_for_api_keys() -> None:
    schemes = schema()["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["type"] == "http" and schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["apiKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key.",
    }
    assert schemes["cookieAuth"] == {"type": "apiKey", "in": "cookie", "name": "sessionid"}


def test_every_authenticated_operation_accepts_a_key_or_the_session() -> None:
    authenticated, public = [], []
    for method, path, operation in operations(schema()):
        security = operation.get("security", [])
        if {} in security:  # no credentials needed (some take them: health shows more to staff)
            public.append(f"{method} {path}")
            continue
        assert {"bearerAuth": []} in security and {"cookieAuth": []} in security, (method, path)
        authenticated.append(f"{method} {path}")
    assert {"GET /api/users/me", "POST /api/cloud/jobs/submit", "PUT /api/cloud/metrics/config"} <= set(authenticated)
    assert "POST /api/auth/login" in public and "GET /api/cloud/jobs" not in public


def test_a_key_from_authorize_works_beside_an_admin_session_without_a_csrf_token(olivia: User, alice: User) -> None:
    # The docs page sends the browser's session cookie too, and no CSRF token: the key decides.
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(olivia)
    _, key = api_key_create(owner=alice, name="swagger")
    me = browser.get("/api/users/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200
    assert me.json()["user"]["username"] == "alice" and me.json()["auth"]["method"] == "api_key"
    created = browser.post(
        "/api/auth/api-keys",
        data={"name": "from the docs page"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert created.status_code == 201, created.content


def test_a_wrong_key_is_a_401_not_the_sessions_user(olivia: User) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(olivia)
    response = browser.get("/api/users/me", headers={"Authorization": "Bearer not-a-key"})
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid or revoked API key."
    assert response["WWW-Authenticate"] == 'Bearer realm="cloudops"'
