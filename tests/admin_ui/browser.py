"""Helpers for browser tests (the `page` fixture is in this folder's conftest.py)."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.conftest import PASSWORD


def admin_login(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}/admin/")
