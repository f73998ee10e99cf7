"""Admin pages other than the job page: read-only pages, the metrics preview, labels."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client

from audit.models import AuditEntry
from audit.services import audit_record
from providers.config import provider_config_get
from providers.models import CircuitBreaker, CircuitState, Job

pytestmark = pytest.mark.django_db


def test_a_circuit_breaker_page_has_no_save_button(admin_client: Client) -> None:
    breaker = CircuitBreaker.objects.create(provider="replicate", state=CircuitState.OPEN)
    url = f"/admin/providers/circuitbreaker/{breaker.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert 'name="_save"' not in page and 'name="_continue"' not in page
    assert admin_client.post(url, {}).status_code == 403


def test_an_audit_entry_page_has_no_save_button_and_says_actor_ip_and_mac(admin_client: Client) -> None:
    audit_record(event_type="config.changed", target_type="metrics", target_id="1")
    entry = AuditEntry.objects.latest("sequence")
    page = admin_client.get(f"/admin/audit/auditentry/{entry.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert "Actor IP" in page and ">MAC<" in page.replace(":", "")


def test_the_metrics_preview_is_text_not_a_bytes_literal(admin_client: Client) -> None:
    page = admin_client.get("/admin/metrics/metricsconfig/", follow=True).content.decode()
    assert "<pre" in page
    assert "b&#x27;" not in page and "\\n" not in page


def test_provider_labels_are_the_words_people_use(admin_client: Client) -> None:
    config = provider_config_get("replicate")
    page = admin_client.get(f"/admin/providers/providerconfig/{config.pk}/change/").content.decode()
    for label in ("SSL CA bundle", "Proxy URL", "HTTP timeout", "Webhook allowed IPs", "S3 public URL"):
        assert f">{label}" in page, label


def test_the_jobs_list_says_cost_in_usd(admin_client: Client, alice: AbstractUser) -> None:
    Job.objects.create(owner=alice, provider="local")
    assert "Cost (USD)" in admin_client.get("/admin/providers/job/").content.decode()
