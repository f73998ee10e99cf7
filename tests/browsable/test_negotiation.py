"""The browsable API: HTML for a browser, JSON exactly as before for every API client."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client

from cloudops.apikeys import api_key_create
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

# What Chromium and Firefox send on a page load.
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
JSON_ACCEPTS = [None, "*/*", "application/json", "application/json, text/html", "text/html;q=0.5, application/json"]


def admin_session(user: AbstractUser) -> Client:
    client = Client()
    assert client.login(username=user.get_username(), password=PASSWORD)
    return client


def get(client: Client, path: str, accept: str | None, **extra: str):  # type: ignore[no-untyped-def]
    headers = {"HTTP_ACCEPT": accept} if accept is not None else {}
    return client.get(path, **headers, **extra)


def test_an_admin_browsing_the_api_gets_drfs_page(olivia: AbstractUser) -> None:
    response = get(admin_session(olivia), "/api/cloud/providers/replicate", BROWSER)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    page = response.content.decode()
    assert "cloudops API" in page
    assert "/static/rest_framework/css/bootstrap.min.css" in page
    assert "//cdn" not in page and "https://" not in page.split("<body")[0]
    # The stored configuration is shown, and forms to change it (DRF's raw-data form).
    assert "&quot;webhook_require_signature&quot;" in page or '"webhook_require_signature"' in page
    assert 'data-method="PUT"' in page and 'data-method="PATCH"' in page
    assert 'name="_content"' in page


@pytest.mark.parametrize("accept", JSON_ACCEPTS)
def test_api_clients_get_json_as_before(olivia: AbstractUser, accept: str | None) -> None:
    _, key = api_key_create(owner=olivia, name="ci")
    response = get(Client(), "/api/cloud/providers/replicate", accept, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["provider"]["name"] == "replicate"


@pytest.mark.parametrize("accept", JSON_ACCEPTS)
def test_a_session_that_does_not_prefer_html_gets_json(olivia: AbstractUser, accept: str | None) -> None:
    response = get(admin_session(olivia), "/api/cloud/providers", accept)
    assert response["Content-Type"] == "application/json"
    assert "providers" in response.json()


@pytest.mark.parametrize(
    ("accept", "status"),
    [(None, 401), ("*/*", 401), ("application/json", 401)],
)
def test_error_bodies_stay_json_for_api_clients(accept: str | None, status: int) -> None:
    response = get(Client(), "/api/cloud/jobs", accept)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_validation_errors_stay_json_for_api_clients(olivia: AbstractUser) -> None:
    _, key = api_key_create(owner=olivia, name="ci")
    response = Client().patch(
        "/api/cloud/providers/replicate",
        '{"http_timeout": -1}',
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
        HTTP_ACCEPT="*/*",
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "http_timeout" in response.json()["errors"]


def test_an_anonymous_browser_gets_a_page_whose_login_link_is_the_admins() -> None:
    response = get(Client(), "/api/cloud/jobs?status=running", BROWSER)
    assert response.status_code == 401
    assert response["Content-Type"] == "text/html; charset=utf-8"
    page = response.content.decode()
    assert 'href="/admin/login/?next=/api/cloud/jobs%3Fstatus%3Drunning"' in page
    assert "/api-auth/" not in page


def test_the_login_link_brings_the_admin_back_to_the_page(olivia: AbstractUser) -> None:
    client = Client()
    response = client.post(
        "/admin/login/?next=/api/cloud/jobs",
        {"username": "olivia", "password": PASSWORD, "next": "/api/cloud/jobs"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/api/cloud/jobs"
    page = get(client, "/api/cloud/jobs", BROWSER)
    assert page.status_code == 200
    assert 'id="drf-logout"' in page.content.decode() and "olivia" in page.content.decode()


def test_format_json_in_the_url_wins_over_a_browsers_accept(olivia: AbstractUser) -> None:
    response = get(admin_session(olivia), "/api/cloud/providers?format=json", BROWSER)
    assert response["Content-Type"] == "application/json"


def test_format_api_in_the_url_asks_for_the_page(olivia: AbstractUser) -> None:
    response = get(admin_session(olivia), "/api/cloud/providers?format=api", "*/*")
    assert response["Content-Type"] == "text/html; charset=utf-8"


def test_drfs_static_files_are_served_by_our_static_setup() -> None:
    for path in ("/static/rest_framework/css/bootstrap.min.css", "/static/rest_framework/js/csrf.js"):
        response = Client().get(path)
        assert response.status_code == 200, path


def test_a_non_drf_endpoint_is_unchanged_for_a_browser() -> None:
    response = get(Client(), "/api/cloud/health/live", BROWSER)
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}
