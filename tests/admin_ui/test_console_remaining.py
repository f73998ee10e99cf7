"""The rest of the operator's console, walked in Chromium: timestamps to the second with their
zone, a job and its audit entries linked both ways, the provider page showing what the API
reports with its prices edited as a table, a template that overrides hand-ticked metric
categories saying so, the rate-limit rules and whether a client is blocked now, and
deactivating a user instead of deleting one. Failure paths are checked with the test client.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser, User
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Page

from audit.models import AuditEntry
from audit.services import audit_record
from cloudops.metrics.models import MetricsConfig
from cloudops.ratelimit.admin import active_rules
from providers.config import provider_config_get, provider_config_update
from providers.models import CircuitBreaker, CircuitState, Job, JobStatus, ProviderConfig
from tests.admin_ui.browser import admin_login
from tests.providers.test_admin import form_data

pytestmark = pytest.mark.django_db

SECOND = datetime(2026, 12, 6, 14, 3, 27, 512000, tzinfo=UTC)


def provider_url(config: ProviderConfig) -> str:
    return f"/admin/providers/providerconfig/{config.pk}/change/"


# --- 1. Timestamps to the second, the zone named ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_jobs_and_audit_lists_show_seconds_and_the_zone(
    page: Page, live_server, olivia: AbstractUser, alice: AbstractUser
) -> None:
    job = Job.objects.create(
        owner=alice,
        provider="local",
        status=JobStatus.COMPLETED,
        created_at=SECOND,
        completed_at=SECOND.replace(second=59),
    )
    entry = audit_record(event_type="job.submitted", target_type="job", target_id=job.pk)
    admin_login(page, live_server.url, "olivia")
    page.goto(f"{live_server.url}/admin/providers/job/")
    row = page.inner_text(f"#result_list tr:has(a:text('{job.pk}'))")
    assert "2026-12-06 14:03:27 UTC" in row and "2026-12-06 14:03:59 UTC" in row
    page.goto(f"{live_server.url}/admin/audit/auditentry/")
    stamp = timezone.localtime(entry.timestamp).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert stamp in page.inner_text(f"#result_list tr:has-text('{job.pk}')")


def test_timestamps_are_shown_in_the_configured_zone_and_name_it(
    admin_client: Client, alice: AbstractUser, settings: Any
) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    Job.objects.create(owner=alice, provider="local", created_at=SECOND)
    page = admin_client.get("/admin/providers/job/").content.decode()
    assert "2026-12-06 15:03:27 CET" in page
    assert "Dec. 6, 2026" not in page


# --- 2. A job and its audit entries, linked both ways ---------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_job_and_its_audit_entries_link_to_each_other(
    page: Page, live_server, olivia: AbstractUser, alice: AbstractUser
) -> None:
    job = Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED)
    other = Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED)
    for target in (job, other, job):
        audit_record(event_type="job.submitted", target_type="job", target_id=target.pk)
    admin_login(page, live_server.url, "olivia")
    page.goto(f"{live_server.url}/admin/providers/job/{job.pk}/change/")
    page.click("text=This job's audit entries")
    page.wait_for_url("**/admin/audit/auditentry/?*")
    links = page.locator("#result_list a.audit-target")
    assert links.count() == 2
    assert set(links.all_inner_texts()) == {job.pk}
    links.first.click()
    page.wait_for_url(f"**/admin/providers/job/{job.pk}/change/")
    assert page.is_visible(".job-status-queued")


def test_an_audit_entry_page_links_its_job_and_other_targets_stay_text(
    admin_client: Client, alice: AbstractUser
) -> None:
    job = Job.objects.create(owner=alice, provider="local")
    about_job = audit_record(event_type="job.submitted", target_type="job", target_id=job.pk)
    about_key = audit_record(event_type="auth.api_key.created", target_type="api_key", target_id="abcd1234")
    page = admin_client.get(f"/admin/audit/auditentry/{about_job.pk}/change/").content.decode()
    assert f'href="/admin/providers/job/{job.pk}/change/"' in page
    page = admin_client.get(f"/admin/audit/auditentry/{about_key.pk}/change/").content.decode()
    assert "abcd1234" in page and 'class="audit-target"' not in page


# --- 3. Providers: what the API reports, prices as a table ----------------------------------------

AWKWARD_PRICES = {
    "gpu-h100": {"price_per_second": 0.30000000000000004, "label": "1x H100 (ours)"},
    "gpu-tiny": {"price_per_second": 1e-07},
    "gpu-x": {"price_per_second": 0.002, "label": "1x X"},
}


def a_busy_provider() -> ProviderConfig:
    changes = {
        "http_timeout": 45.5,
        "proxy_url": "http://user:s3cret@proxy.internal:3128",
        "cost_limit_enabled": True,
        "cost_limit_amount": Decimal("100"),
        "cost_limit_action": "block",
        "hardware": AWKWARD_PRICES,
    }
    return provider_config_update(provider_config=provider_config_get("replicate"), changes=changes)


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_provider_page_shows_what_the_api_reports(
    page: Page, live_server, olivia: AbstractUser, alice: AbstractUser, admin_client: Client
) -> None:
    config = a_busy_provider()
    now = timezone.now()
    Job.objects.create(
        owner=alice, provider="replicate", status="completed", completed_at=now, cost_usd=Decimal("12.5")
    )
    CircuitBreaker.objects.create(provider="replicate", state=CircuitState.OPEN, opened_at=now, failures_total=4)
    api = admin_client.get("/api/cloud/providers/replicate/config").json()["provider"]
    admin_login(page, live_server.url, "olivia")
    page.goto(f"{live_server.url}{provider_url(config)}")

    effective = dict(
        zip(
            page.locator("table.provider-effective th").all_inner_texts(),
            page.locator("table.provider-effective td").all_inner_texts(),
            strict=True,
        )
    )
    assert effective["HTTP timeout (seconds)"] == str(api["effective"]["http_timeout"]) == "45.5"
    assert effective["Proxy URL"] == api["effective"]["proxy_url"] == "http://user:***@proxy.internal:3128"
    assert effective["Webhook URL"] == api["effective"]["webhook_url"]
    assert effective["S3 output path"] == api["effective"]["s3_output_path"]
    assert effective["SSL verification"] == "verify certificates"

    spend = page.inner_text(".field-cost_limit_spend .readonly")
    assert api["cost_limit"]["spent_usd"] == "12.50"
    assert "$12.50 of $100.00 spent this monthly period (12.5%)" in spend and "when reached: block" in spend
    assert page.inner_text(".field-circuit_state .readonly").startswith("open: calls to the provider are refused")

    prices = page.locator("table.provider-prices tbody tr")
    rows = {cells[0]: cells for cells in (prices.nth(i).locator("td").all_inner_texts() for i in range(prices.count()))}
    assert list(rows) == list(api["hardware_prices"])
    for hw_id, entry in api["hardware_prices"].items():
        assert rows[hw_id][1:3] == [entry["label"], repr(entry["price_per_second"])]
        assert float(rows[hw_id][3]) == entry["price_per_hour"]
    assert rows["gpu-l40s"][4] == "the provider's default"
    assert rows["gpu-h100"][4] == "the override above (default 0.001525)"
    assert rows["gpu-tiny"][4] == "the override above (not a default)"
    assert page.locator("textarea[name=hardware]").count() == 0, "no raw JSON"


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_saving_the_provider_page_unchanged_keeps_the_prices_identical(
    page: Page, live_server, olivia: AbstractUser
) -> None:
    config = a_busy_provider()
    before = ProviderConfig.objects.get(pk=config.pk).hardware
    assert before == AWKWARD_PRICES
    admin_login(page, live_server.url, "olivia")
    page.goto(f"{live_server.url}{provider_url(config)}")
    assert page.locator("tr.hardware-row").count() == len(AWKWARD_PRICES) + 3
    page.click("input[name=_continue]")
    page.wait_for_selector("ul.messagelist")
    assert ProviderConfig.objects.get(pk=config.pk).hardware == before
    assert not AuditEntry.objects.filter(event_type="provider.configured", actor_username="olivia").exists()


def hardware_row(page: Page, hw_id: str) -> Any:
    return page.locator("tr.hardware-row", has=page.locator(f"input[value='{hw_id}']"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_prices_are_edited_added_and_deleted_in_the_table(page: Page, live_server, olivia: AbstractUser) -> None:
    config = a_busy_provider()
    admin_login(page, live_server.url, "olivia")
    page.goto(f"{live_server.url}{provider_url(config)}")
    hardware_row(page, "gpu-h100").locator("input[name$=-price]").fill("0.0016")
    hardware_row(page, "gpu-x").locator("input[name$=-delete]").check()
    blank = page.locator("tr.hardware-row").nth(len(AWKWARD_PRICES))
    blank.locator("input[name$=-id]").fill("gpu-new")
    blank.locator("input[name$=-label]").fill("New GPU")
    blank.locator("input[name$=-price]").fill("0.5")
    page.click("input[name=_continue]")
    page.wait_for_selector("ul.messagelist")
    assert ProviderConfig.objects.get(pk=config.pk).hardware == {
        "gpu-h100": {"price_per_second": 0.0016, "label": "1x H100 (ours)"},
        "gpu-tiny": {"price_per_second": 1e-07},
        "gpu-new": {"price_per_second": 0.5, "label": "New GPU"},
    }
    entry = AuditEntry.objects.filter(event_type="provider.configured").latest("sequence")
    assert (entry.actor_username, entry.details["changed"]) == ("olivia", ["hardware"])
    new_row = page.locator("table.provider-prices tr:has-text('gpu-new')").inner_text()
    assert "\t1800\t" in new_row and "not a default" in new_row


@pytest.mark.parametrize(
    ("row", "error"),
    [
        ({"id": "gpu-x", "price": "cheap"}, "gpu-x: the price per second must be a number of USD, not 'cheap'."),
        ({"id": "gpu-x", "price": ""}, "gpu-x: give the price per second in USD."),
        ({"id": "", "label": "A GPU", "price": "0.1"}, "Row 1: give the hardware ID (or empty the row)."),
        ({"id": "GPU X", "price": "0.1"}, "'GPU X' is not a hardware id"),
        ({"id": "gpu-x", "price": "-1"}, "gpu-x: price_per_second must be a number of dollars per second"),
        ({"id": "gpu-x", "price": "nan"}, "gpu-x: price_per_second must be a number of dollars per second"),
    ],
)
def test_a_bad_price_row_is_a_form_error_naming_it_and_nothing_is_saved(
    admin_client: Client, row: dict[str, str], error: str
) -> None:
    config = a_busy_provider()
    data = form_data(config, hardware=None)
    data.update({f"hardware-0-{cell}": value for cell, value in row.items()})
    response = admin_client.post(provider_url(config), data)
    assert response.status_code == 200
    assert error in " ".join(response.context["adminform"].form.errors["hardware"])
    assert ProviderConfig.objects.get(pk=config.pk).hardware == AWKWARD_PRICES


def test_a_post_without_the_table_keeps_the_prices(admin_client: Client) -> None:
    config = a_busy_provider()
    response = admin_client.post(provider_url(config), form_data(config, hardware=None, display_name="Prod"))
    assert response.status_code == 302
    stored = ProviderConfig.objects.get(pk=config.pk)
    assert (stored.display_name, stored.hardware) == ("Prod", AWKWARD_PRICES)


# --- 4. A metrics template overriding hand-ticked categories says so -------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_template_that_overrides_ticked_categories_says_so(page: Page, live_server, olivia: AbstractUser) -> None:
    admin_login(page, live_server.url, "olivia")
    page.goto(f"{live_server.url}/admin/metrics/metricsconfig/")
    assert "The saved categories are the standard template's." in page.inner_text(".field-template_in_use")
    page.check("input[name=prometheus_categories][value=audit]")
    page.select_option("#id_apply_template", "standard")
    note = page.inner_text(".metrics-template-note")
    assert note == (
        "The standard template replaces the categories ticked above with its own (jobs, http, health) "
        "and turns the export on."
    )
    page.click("input[name=_continue]")
    page.wait_for_selector("ul.messagelist")
    assert (
        "The standard template overrode the categories ticked by hand (jobs, http, audit, health): "
        "the export now has the template's (jobs, http, health)."
    ) in page.inner_text("ul.messagelist")
    config = MetricsConfig.objects.get()
    assert (config.prometheus_enabled, config.prometheus_categories) == (True, ["jobs", "http", "health"])
    assert "Prometheus export enabled: jobs, http, health" in page.inner_text("ul.messagelist")


def test_a_template_applied_without_touching_the_ticks_warns_of_nothing(admin_client: Client) -> None:
    admin_client.get("/admin/metrics/metricsconfig/")
    data = {"prometheus_categories": ["jobs", "http", "health"], "apply_template": "security"}
    response = admin_client.post("/admin/metrics/metricsconfig/1/change/", data, follow=True)
    text = " ".join(str(m) for m in response.context["messages"])
    assert "overrode" not in text and "Prometheus export enabled: jobs, http, rate_limits, approvals, audit" in text
    page = response.content.decode()
    assert "None: the saved categories were chosen by hand." not in page
    assert "The saved categories are the security template&#x27;s." in page


# --- 5. Rate limits: each rule's limit, whether a client is blocked now ---------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_rate_limit_page_shows_rules_and_whether_a_client_is_blocked(
    page: Page, live_server, olivia: AbstractUser
) -> None:
    login_rule = next(rule for rule in active_rules() if rule.name == "auth-login")
    for _ in range(login_rule.calls):
        assert login_rule.limiter.check_sync("203.0.113.9")
    admin_login(page, live_server.url, "olivia")
    page.goto(f"{live_server.url}/admin/ratelimit/ratelimitbucket/")
    rules = page.locator("#ratelimit-rules tbody tr")
    assert rules.count() == len(active_rules())
    login_row = page.inner_text("#ratelimit-rules tr:has-text('auth-login')")
    assert "5 per 60 s" in login_row and "POST" in login_row and "refuse requests (503)" in login_row
    state = page.inner_text("#ratelimit-state tr:has-text('auth-login:203.0.113.9')").split("\t")
    assert state[1:4] == ["5", "5 per 60 s", "yes"]

    page.fill("#id_client", "203.0.113.9")
    page.click("#ratelimit-client-form input[type=submit]")
    page.wait_for_selector("#ratelimit-client")
    assert page.inner_text("#ratelimit-client tr.blocked td:first-child") == "auth-login"
    assert page.locator("#ratelimit-client tr.blocked").count() == 1
    assert "yes, for" in page.inner_text("#ratelimit-client tr.blocked")
    page.fill("#id_client", "198.51.100.1")
    page.click("#ratelimit-client-form input[type=submit]")
    page.wait_for_selector("#ratelimit-client")
    assert page.locator("#ratelimit-client tr.blocked").count() == 0
    assert page.locator("#ratelimit-client tr.allowed").count() > 0


@pytest.mark.parametrize(
    ("client", "error"),
    [
        ("not-an-ip", "client: &#x27;not-an-ip&#x27; is not an IP address (IPv4 or IPv6)."),
        ("1" * 65, "client: at most 64 characters (an IPv4 or IPv6 address)."),
        ("", "client: &#x27;&#x27; is not an IP address (IPv4 or IPv6)."),
    ],
)
def test_a_bad_client_is_a_400_naming_the_field(admin_client: Client, client: str, error: str) -> None:
    response = admin_client.get("/admin/ratelimit/ratelimitbucket/", {"client": client})
    assert response.status_code == 400
    assert error in response.content.decode()


def test_the_rules_say_when_rate_limiting_is_off(admin_client: Client, settings: Any) -> None:
    settings.RATE_LIMIT_CALLS = 0
    page = admin_client.get("/admin/ratelimit/ratelimitbucket/").content.decode()
    assert 'id="ratelimit-off"' in page and 'id="ratelimit-rules"' not in page


# --- 6. Deactivate a user instead of deleting one --------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_deleting_a_user_offers_deactivation_and_it_works(
    page: Page, live_server, olivia: AbstractUser, alice: AbstractUser
) -> None:
    Job.objects.create(owner=alice, provider="local")
    admin_login(page, live_server.url, "olivia")
    page.goto(f"{live_server.url}/admin/auth/user/{alice.pk}/delete/")
    explanation = page.inner_text(".deactivate-instead")
    assert "Deactivate instead of deleting." in explanation and "audit trail names users" in explanation
    page.click("input.deactivate-instead-button")
    page.wait_for_url(f"**/admin/auth/user/{alice.pk}/change/")
    assert "Now inactive: alice." in page.inner_text("ul.messagelist")
    assert not page.is_checked("#id_is_active")
    assert User.objects.get(pk=alice.pk).is_active is False
    entry = AuditEntry.objects.get(event_type="admin.changed", target_id=str(alice.pk))
    assert (entry.actor_username, entry.details["values"]) == ("olivia", {"is_active": False})


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_deleting_selected_users_offers_deactivation_for_the_same_users(
    page: Page, live_server, olivia: AbstractUser, alice: AbstractUser, bob: AbstractUser
) -> None:
    admin_login(page, live_server.url, "olivia")
    page.goto(f"{live_server.url}/admin/auth/user/")
    page.check(f"input[name=_selected_action][value='{bob.pk}']")
    page.select_option("select[name=action]", "delete_selected")
    page.click("button[name=index]")
    page.wait_for_selector(".deactivate-instead")
    page.click("input.deactivate-instead-button")
    page.wait_for_selector("ul.messagelist")
    assert "Now inactive: bob." in page.inner_text("ul.messagelist")
    assert User.objects.get(pk=bob.pk).is_active is False
    assert User.objects.get(pk=alice.pk).is_active is True


def test_an_operator_cannot_deactivate_themselves(admin_client: Client, olivia: AbstractUser) -> None:
    response = admin_client.post(f"/admin/auth/user/{olivia.pk}/deactivate/", follow=True)
    assert "You cannot deactivate your own account." in response.content.decode()
    assert User.objects.get(pk=olivia.pk).is_active is True


def test_deactivation_is_post_only_and_needs_a_real_user(admin_client: Client, alice: AbstractUser) -> None:
    assert admin_client.get(f"/admin/auth/user/{alice.pk}/deactivate/").status_code == 405
    assert admin_client.post("/admin/auth/user/999999/deactivate/").status_code == 404
    assert admin_client.post("/admin/auth/user/abc/deactivate/").status_code == 404
    assert User.objects.get(pk=alice.pk).is_active is True
