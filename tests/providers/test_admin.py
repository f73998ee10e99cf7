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


@pytest.fixture
def admin_client(olivia: AbstractUser) -> Client:
    client = Client()
    client.force_login(olivia)
    return client


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
    response = admin_client.post(
        "/admin/providers/job/", {"action": "cancel_selected", "_selected_action": [running.pk, done.pk]}, follow=True
    )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert f"{done.pk}: Job {done.pk} is already completed." in messages
    assert "1 job(s) cancelled." in messages
    assert Job.objects.get(pk=running.pk).status == JobStatus.CANCELLED
    entry = AuditEntry.objects.get(event_type="job.cancelled")
    assert (entry.target_id, entry.actor_username) == (running.pk, "olivia")


def test_a_circuit_can_be_closed_by_hand(admin_client: Client) -> None:
    breaker = CircuitBreaker.objects.create(
        provider="replicate", state=CircuitState.OPEN, opened_at=timezone.now(), failures_total=7
    )
    admin_client.post(
        "/admin/providers/circuitbreaker/", {"action": "reset_selected", "_selected_action": [breaker.pk]}
    )
    breaker.refresh_from_db()
    assert (breaker.state, breaker.failures_total) == (CircuitState.CLOSED, 7)
