"""The browsable API in headless Chromium: log in through the admin, read, change with DRF's form."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import AbstractUser
from playwright.sync_api import Page

from providers.config import provider_config_get
from tests.admin_ui.browser import admin_login
from tests.admin_ui.conftest import page  # noqa: F401  # the Chromium fixture
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def patch(browser_page: Page, body: dict[str, object]) -> int:
    """Send `body` with the page's raw-data form and PATCH button; the answer's status."""
    form = browser_page.locator("#put-generic-content-form form")
    form.locator("textarea[name='_content']").fill(json.dumps(body))
    with browser_page.expect_response(lambda response: response.request.method == "PATCH") as answer:
        form.locator("button[data-method='PATCH']").click()
    return answer.value.status


def test_an_admin_reads_and_changes_a_provider_in_the_browsable_api(
    page: Page,  # noqa: F811
    live_server,  # type: ignore[no-untyped-def]
    olivia: AbstractUser,
) -> None:
    requests: list[str] = []
    static: dict[str, int] = {}
    page.on("request", lambda request: requests.append(request.url))
    page.on("response", lambda r: static.update({r.url: r.status}) if "/static/" in r.url else None)
    admin_login(page, live_server.url, "olivia")
    page.goto(f"{live_server.url}/api/cloud/providers/replicate")
    assert page.title().endswith("cloudops API")
    assert page.locator("#drf-user").inner_text() == "olivia"
    assert page.locator(".response-info").is_visible()
    assert '"name": "replicate"' in page.locator(".response-info").inner_text()

    # DRF's raw-data form: JSON in, PATCH through DRF's own JavaScript (CSRF header included).
    assert patch(page, {"http_timeout": 45}) == 200
    page.wait_for_selector(".response-info:has-text('\"http_timeout\": 45.0')")
    assert provider_config_get("replicate").http_timeout == 45

    # A bad value comes back as DRF's page with the 400 naming the field.
    assert patch(page, {"http_timeout": -1}) == 400
    page.wait_for_selector(".response-info:has-text('HTTP 400')")
    assert "http_timeout" in page.locator(".response-info").inner_text()
    assert provider_config_get("replicate").http_timeout == 45

    origin = live_server.url
    assert all(url.startswith(origin) for url in requests), [u for u in requests if not u.startswith(origin)]
    # DRF's CSS and JavaScript came from our static files (no CDN), all found.
    assert any("/static/rest_framework/css/bootstrap.min.css" in url for url in static)
    assert any("/static/rest_framework/js/ajax-form.js" in url for url in static)
    assert set(static.values()) <= {200, 304}, static


def test_the_login_link_of_an_anonymous_page_leads_to_the_admin_and_back(
    page: Page,  # noqa: F811
    live_server,  # type: ignore[no-untyped-def]
    olivia: AbstractUser,
) -> None:
    page.goto(f"{live_server.url}/api/cloud/jobs")
    assert "Authentication credentials were not provided." in page.locator(".response-info").inner_text()
    page.click("#drf-login")
    page.wait_for_url("**/admin/login/**")
    page.fill("#id_username", "olivia")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/api/cloud/jobs")
    assert "HTTP 200 OK" in page.locator(".response-info").inner_text()
    # The job list takes POST (submit): DRF's form for it is there.
    assert page.locator("#post-generic-content-form textarea[name='_content']").count() == 1
