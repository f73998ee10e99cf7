from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from providers.admin import SSL_WARNING
from providers.config import provider_config_get
from providers.models import CircuitBreaker, CircuitState, Job, JobStatus, ProviderConfig

pytestmark = pytest.mark.django_db


def form_data(config: ProviderConfig, **changes: Any) -> dict[str, str]:
    """The provider change form as the browser posts it (unticked checkboxes are absent)."""
    data = {
        "display_name": config.display_name,
        "webhook_allowed_ips": "\n".join(config.webhook_allowed_ips),
        "ssl_verify": {None: "unknown", True: "true", False: "false"}[config.ssl_verify],
        "ssl_ca_bundle": config.ssl_ca_bundle,
        "proxy_url": config.proxy_url,
        "http_timeout": "" if config.http_timeout is None else str(config.http_timeout),
        "s3_public_url": config.s3_public_url,
        "s3_output_path": config.s3_output_path,
        "cost_limit_amount": str(config.cost_limit_amount),
        "cost_limit_period": config.cost_limit_period,
        "cost_limit_action": config.cost_limit_action,
        "credit_balance_usd": "" if config.credit_balance_usd is None else str(config.credit_balance_usd),
        "credit_low_usd": str(config.credit_low_usd),
        "hardware": "{}",
        "default_hardware": config.default_hardware,
        "model": config.model,
        "version_override": config.version_override,
    }
    for flag in ("enabled", "webhook_require_signature", "s3_endpoint_enabled", "cost_limit_enabled"):
        if getattr(config, flag):
            data[flag] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def change_url(config: ProviderConfig) -> str:
    return f"/admin/providers/providerconfig/{config.pk}/change/"


def test_the_change_form_has_the_advanced_configuration_sections(admin_client: Client) -> None:
    config = provider_config_get("replicate")
    page = admin_client.get(change_url(config)).content.decode()
    assert "Advanced configuration: webhook security" in page
    assert "Advanced configuration: network" in page
    assert SSL_WARNING in page


def test_saving_validates_normalises_and_audits(admin_client: Client) -> None:
    config = provider_config_get("replicate")
    data = form_data(config, webhook_allowed_ips="34.82.0.0/16\n35.185.1.2/16\n2001:db8::/32", http_timeout="45")
    response = admin_client.post(change_url(config), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    config.refresh_from_db()
    assert config.webhook_allowed_ips == ["34.82.0.0/16", "35.185.0.0/16", "2001:db8::/32"]
    assert config.http_timeout == 45.0
    entry = AuditEntry.objects.get(event_type="provider.configured")
    assert entry.details["changed"] == ["http_timeout", "webhook_allowed_ips"]
    assert entry.actor_username == "olivia"


def test_invalid_values_are_form_errors_and_nothing_is_saved(admin_client: Client) -> None:
    config = provider_config_get("replicate")
    data = form_data(config, webhook_allowed_ips="10.0.0.0/33", proxy_url="not a url", http_timeout="900")
    response = admin_client.post(change_url(config), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"webhook_allowed_ips", "proxy_url", "http_timeout"}
    config.refresh_from_db()
    assert config.webhook_allowed_ips == [] and config.proxy_url == ""
    assert not AuditEntry.objects.filter(event_type="provider.configured").exists()


def test_disabling_ssl_verification_needs_a_confirmation_remembered_for_the_session(admin_client: Client) -> None:
    config = provider_config_get("replicate")
    response = admin_client.post(change_url(config), form_data(config, ssl_verify="false"))
    assert response.status_code == 200
    assert (
        "Tick this box to confirm: " + SSL_WARNING in response.context["adminform"].form.errors["confirm_disable_ssl"]
    )
    assert ProviderConfig.objects.get(pk=config.pk).ssl_verify is None
    response = admin_client.post(change_url(config), form_data(config, ssl_verify="false", confirm_disable_ssl="on"))
    assert response.status_code == 302
    assert ProviderConfig.objects.get(pk=config.pk).ssl_verify is False
    # Back on, then off again in the same session: no second confirmation.
    admin_client.post(change_url(config), form_data(ProviderConfig.objects.get(pk=config.pk), ssl_verify="true"))
    response = admin_client.post(
        change_url(config), form_data(ProviderConfig.objects.get(pk=config.pk), ssl_verify="false")
    )
    assert response.status_code == 302
    assert ProviderConfig.objects.get(pk=config.pk).ssl_verify is False


def test_providers_cannot_be_added_or_deleted_in_the_admin(admin_client: Client) -> None:
    config = provider_config_get("local")
    assert admin_client.get("/admin/providers/providerconfig/add/").status_code == 403
    assert admin_client.get(f"/admin/providers/providerconfig/{config.pk}/delete/").status_code == 403


def test_the_jobs_list_filters_and_never_shows_the_upload_token(admin_client: Client, alice: AbstractUser) -> None:
    job = Job.objects.create(owner=alice, provider="local", status=JobStatus.RUNNING, name="visible")
    listing = admin_client.get("/admin/providers/job/?status__exact=running")
    assert listing.status_code == 200
    assert job.pk in listing.content.decode()
    page = admin_client.get(f"/admin/providers/job/{job.pk}/change/").content.decode()
    assert "visible" in page
    assert job.upload_token not in page and job.upload_token not in listing.content.decode()


def test_the_cancel_action_uses_the_same_service(admin_client: Client, alice: AbstractUser) -> None:
    running = Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED)
    done = Job.objects.create(owner=alice, provider="local", status=JobStatus.COMPLETED, completed_at=timezone.now())
    data = {"action": "cancel_selected", "_selected_action": [running.pk, done.pk], "post": "yes"}
    response = admin_client.post("/admin/providers/job/", data, follow=True)
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert f"{done.pk} was not cancelled: Job {done.pk} is already completed." in messages
    assert f"Job {running.pk} is now cancelled." in messages
    assert "1 job(s) are now cancelled." in messages
    assert Job.objects.get(pk=running.pk).status == JobStatus.CANCELLED
    entry = AuditEntry.objects.get(event_type="job.cancelled")
    assert (entry.target_id, entry.actor_username) == (running.pk, "olivia")


def test_a_circuit_can_be_closed_by_hand_and_it_is_audited(admin_client: Client) -> None:
    breaker = CircuitBreaker.objects.create(
        provider="replicate",
        state=CircuitState.OPEN,
        opened_at=timezone.now(),
        failures_total=7,
        consecutive_failures=5,
    )
    action = {"action": "reset_selected", "_selected_action": [breaker.pk]}
    response = admin_client.post("/admin/providers/circuitbreaker/", action, follow=True)
    assert "1 circuit(s) are now closed." in [str(m) for m in response.context["messages"]]
    breaker.refresh_from_db()
    assert (breaker.state, breaker.failures_total, breaker.consecutive_failures) == (CircuitState.CLOSED, 7, 0)
    entry = AuditEntry.objects.get(event_type="circuit_breaker.reset")
    assert (entry.target_type, entry.target_id, entry.action, entry.actor_username) == (
        "provider",
        "replicate",
        "close",
        "olivia",
    )
    assert entry.details == {"previous_state": "open", "consecutive_failures": 5, "failures_total": 7}
    # Closing a closed circuit changes nothing and writes nothing.
    admin_client.post("/admin/providers/circuitbreaker/", action)
    assert AuditEntry.objects.filter(event_type="circuit_breaker.reset").count() == 1


# --- The proxy password (review finding 17) -------------------------------------------------------

PROXY = "http://ops:hunter2@proxy.corp:3128"
REDACTED = "http://ops:***@proxy.corp:3128"


@pytest.fixture
def proxied() -> ProviderConfig:
    config = provider_config_get("replicate")
    config.proxy_url = PROXY
    config.save()
    return config


def test_the_proxy_password_is_masked_in_the_admin(admin_client: Client, proxied: ProviderConfig) -> None:
    form = admin_client.get(change_url(proxied)).content.decode()
    assert f'value="{REDACTED}"' in form
    listing = admin_client.get("/admin/providers/providerconfig/").content.decode()
    for page in (form, listing):
        assert "hunter2" not in page


def test_saving_the_form_unchanged_keeps_the_proxy_password(admin_client: Client, proxied: ProviderConfig) -> None:
    response = admin_client.post(change_url(proxied), form_data(proxied, proxy_url=REDACTED))
    assert response.status_code == 302
    assert ProviderConfig.objects.get(pk=proxied.pk).proxy_url == PROXY
    assert not AuditEntry.objects.filter(event_type="provider.configured").exists()


def test_changing_another_field_keeps_the_proxy_password(admin_client: Client, proxied: ProviderConfig) -> None:
    response = admin_client.post(change_url(proxied), form_data(proxied, proxy_url=REDACTED, http_timeout="45"))
    assert response.status_code == 302
    stored = ProviderConfig.objects.get(pk=proxied.pk)
    assert (stored.proxy_url, stored.http_timeout) == (PROXY, 45.0)
    assert AuditEntry.objects.get(event_type="provider.configured").details["changed"] == ["http_timeout"]


def test_a_typed_proxy_url_replaces_the_stored_one(admin_client: Client, proxied: ProviderConfig) -> None:
    new = "http://ops:s3cret@proxy2.corp:3128"
    assert admin_client.post(change_url(proxied), form_data(proxied, proxy_url=new)).status_code == 302
    assert ProviderConfig.objects.get(pk=proxied.pk).proxy_url == new
    entry = AuditEntry.objects.get(event_type="provider.configured")
    assert entry.details["values"]["proxy_url"] == "http://ops:***@proxy2.corp:3128"


@pytest.mark.parametrize(
    "url",
    ["http://ops:***@evil.example:3128", "http://root:***@proxy.corp:3128", "http://ops:***@proxy.corp:8080"],
)
def test_the_placeholder_never_carries_the_password_to_another_proxy(
    admin_client: Client, proxied: ProviderConfig, url: str
) -> None:
    response = admin_client.post(change_url(proxied), form_data(proxied, proxy_url=url))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["proxy_url"]
    assert "keeps the stored password only for the same user, host and port" in errors[0]
    assert "type the password for this proxy" in errors[0]
    assert ProviderConfig.objects.get(pk=proxied.pk).proxy_url == PROXY
    assert "hunter2" not in response.content.decode()
