"""Swagger UI (/api/docs/) in headless Chromium: "Authorize" with an API key, then "Try it
out" on an authenticated operation answers as the key's owner."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from cloudops.apikeys import api_key_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_authorize_with_an_api_key_then_try_an_authenticated_operation(page: Page, live_server, alice: User) -> None:
    _, key = api_key_create(owner=alice, name="swagger")
    page.goto(f"{live_server.url}/api/docs/")
    page.click(".auth-wrapper button.authorize")
    bearer = page.locator(".auth-container").filter(has_text="bearerAuth")
    bearer.locator("input").fill(key)
    bearer.locator("button.authorize").click()
    expect(bearer).to_contain_text("Authorized")
    page.click("button.btn-done")

    operation = page.locator("#operations-users-users_me_retrieve")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    response = operation.locator(".live-responses-table .response")
    expect(response.locator(".response-col_status")).to_contain_text("200")
    body = json.loads(response.locator(".response-col_description pre.microlight").first.inner_text())
    assert body["user"]["username"] == "alice" and body["auth"]["method"] == "api_key"
    # What Swagger sent: the key as a bearer token (shown in its curl line).
    assert f"Authorization: Bearer {key}" in operation.locator(".curl-command").inner_text()


def test_without_authorize_the_same_operation_is_a_401(page: Page, live_server) -> None:
    page.goto(f"{live_server.url}/api/docs/")
    operation = page.locator("#operations-users-users_me_retrieve")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    expect(operation.locator(".live-responses-table .response .response-col_status")).to_contain_text("401")
