"""The guide's confirmation dialog when SSL verification is turned off in the admin."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser
from playwright.sync_api import Dialog, Page

from providers.admin import SSL_WARNING
from providers.config import provider_config_get
from providers.models import ProviderConfig
from tests.admin_ui.browser import admin_login

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def open_replicate_config(page: Page, base_url: str) -> ProviderConfig:
    config = provider_config_get("replicate")
    page.goto(f"{base_url}/admin/providers/providerconfig/{config.pk}/change/")
    return config


def save(page: Page) -> None:
    page.click("input[name=_continue]")
    page.wait_for_load_state()


def stored_ssl_verify(config: ProviderConfig) -> bool | None:
    return ProviderConfig.objects.get(pk=config.pk).ssl_verify


def test_turning_verification_off_asks_once_per_session(page: Page, live_server, olivia: AbstractUser) -> None:
    admin_login(page, live_server.url, "olivia")
    config = open_replicate_config(page, live_server.url)
    assert not page.is_visible("#id_confirm_disable_ssl"), "the dialog replaces the checkbox"
    seen: list[str] = []

    def accept(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.select_option("#id_ssl_verify", "false")
    assert seen == [SSL_WARNING]
    save(page)
    assert stored_ssl_verify(config) is False
    assert page.input_value("#id_ssl_verify") == "false", "the page shows the stored value"

    page.select_option("#id_ssl_verify", "true")
    save(page)
    assert stored_ssl_verify(config) is True
    page.select_option("#id_ssl_verify", "false")
    save(page)
    assert seen == [SSL_WARNING], "confirmed once, the session is not asked again"
    assert stored_ssl_verify(config) is False


def test_cancelling_the_dialog_keeps_verification_on(page: Page, live_server, olivia: AbstractUser) -> None:
    admin_login(page, live_server.url, "olivia")
    config = open_replicate_config(page, live_server.url)
    page.on("dialog", lambda dialog: dialog.dismiss())
    page.select_option("#id_ssl_verify", "false")
    assert page.input_value("#id_ssl_verify") == "unknown"
    save(page)
    assert stored_ssl_verify(config) is None
