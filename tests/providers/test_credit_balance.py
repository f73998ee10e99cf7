"""Prepaid credit per provider: the amount set (stamped when it changes, through the API and
the admin), minus the jobs completed since; its metric, the degraded health component and
the submission warning below the low mark; negative amounts refused naming the field."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from audit.models import AuditEntry
from cloudops.metrics.services import metrics_config_update
from providers.config import provider_config_get
from providers.jobs import job_transition
from providers.models import Job, JobStatus, ProviderConfig
from tests.metrics.scrape import Scraper
from tests.metrics.test_promtool import promtool_findings
from tests.providers.helpers import submit
from tests.providers.test_admin import change_url, form_data

pytestmark = pytest.mark.django_db

BALANCE = "simpletuner_credit_balance_usd"


def configure(client: APIClient, body: dict[str, Any], *, provider: str = "local", method: str = "patch") -> Any:
    return getattr(client, method)(
        f"/api/cloud/providers/{provider}", data=json.dumps(body), content_type="application/json"
    )


def completed(owner: AbstractUser, cost: str, *, provider: str = "local") -> Job:
    job = Job.objects.create(owner=owner, provider=provider, hardware="local")
    job_transition(job=job, to=JobStatus.RUNNING)
    job_transition(job=job, to=JobStatus.COMPLETED, fields={"run_seconds": 10, "cost_usd": Decimal(cost)})
    return job


def credit(client: APIClient, provider: str = "local") -> Any:
    response = client.get(f"/api/cloud/providers/{provider}")
    assert response.status_code == 200
    return response.json()["provider"]


def health(client: APIClient) -> dict[str, Any]:
    response = client.get("/api/cloud/health?include_providers=true")
    assert response.status_code == 200
    return {c["name"]: c for c in response.json()["components"]}["provider:local"]


class TestSettingTheAmount:
    def test_no_credit_is_tracked_until_an_amount_is_set(self, staff_client: APIClient) -> None:
        provider = credit(staff_client)
        assert (provider["credit_balance_usd"], provider["credit_balance_set_at"], provider["credit"]) == (
            None,
            None,
            None,
        )
        assert provider["credit_low_usd"] == 0

    def test_setting_the_amount_stamps_its_time_and_is_audited(self, staff_client: APIClient) -> None:
        before = timezone.now()
        response = configure(staff_client, {"credit_balance_usd": 100, "credit_low_usd": 20}, method="put")
        assert response.status_code == 200, response.json()
        provider = response.json()["provider"]
        assert provider["credit_balance_usd"] == 100 and provider["credit_low_usd"] == 20
        stored = ProviderConfig.objects.get(name="local")
        assert stored.credit_balance_set_at is not None and stored.credit_balance_set_at >= before
        assert provider["credit_balance_set_at"] == stored.credit_balance_set_at.isoformat().replace("+00:00", "Z")
        assert provider["credit"] == {
            "amount_usd": 100.0,
            "set_at": provider["credit_balance_set_at"],
            "spent_since_usd": 0.0,
            "balance_usd": 100.0,
            "low_usd": 20.0,
            "low": False,
        }
        entry = AuditEntry.objects.get(event_type="provider.configured")
        assert entry.details["changed"] == ["credit_balance_set_at", "credit_balance_usd", "credit_low_usd"]
        assert entry.details["values"]["credit_balance_usd"] == "100.00"

    def test_the_stamp_moves_only_when_the_amount_changes(self, staff_client: APIClient) -> None:
        configure(staff_client, {"credit_balance_usd": 100})
        first = ProviderConfig.objects.get(name="local").credit_balance_set_at
        assert first is not None
        configure(staff_client, {"credit_balance_usd": 100, "credit_low_usd": 5})
        assert ProviderConfig.objects.get(name="local").credit_balance_set_at == first
        configure(staff_client, {"credit_balance_usd": 150})
        second = ProviderConfig.objects.get(name="local").credit_balance_set_at
        assert second is not None and second > first
        configure(staff_client, {"credit_balance_usd": None})
        stored = ProviderConfig.objects.get(name="local")
        assert (stored.credit_balance_usd, stored.credit_balance_set_at) == (None, None)

    @pytest.mark.parametrize("field", ["credit_balance_usd", "credit_low_usd"])
    @pytest.mark.parametrize("value", [-1, -0.01, "50"])
    def test_negative_or_non_numeric_amounts_are_a_400_naming_the_field(
        self, staff_client: APIClient, field: str, value: object
    ) -> None:
        response = configure(staff_client, {field: value})
        assert response.status_code == 400
        assert set(response.json()["errors"]) == {field}
        assert response.json()["detail"].startswith(f"{field}: ")
        assert provider_config_get("local").credit_balance_set_at is None

    def test_the_low_mark_cannot_be_null(self, staff_client: APIClient) -> None:
        response = configure(staff_client, {"credit_low_usd": None})
        assert response.status_code == 400 and set(response.json()["errors"]) == {"credit_low_usd"}

    def test_researchers_cannot_set_credit(self, alice_client: APIClient) -> None:
        assert configure(alice_client, {"credit_balance_usd": 10}).status_code == 403
        assert provider_config_get("local").credit_balance_usd is None


class TestTheBalance:
    def test_jobs_completed_since_the_amount_was_set_are_subtracted(
        self, staff_client: APIClient, alice: AbstractUser
    ) -> None:
        earlier = completed(alice, "7.00")
        configure(staff_client, {"credit_balance_usd": 100})
        # Completed before the amount was set: already paid for out of the old balance.
        set_at = ProviderConfig.objects.get(name="local").credit_balance_set_at
        assert set_at is not None
        Job.objects.filter(pk=earlier.pk).update(completed_at=set_at - timedelta(minutes=5))
        completed(alice, "12.50")
        completed(alice, "0.25")
        completed(alice, "40.00", provider="replicate")  # another provider's credit
        running = Job.objects.create(owner=alice, provider="local", hardware="local")
        job_transition(job=running, to=JobStatus.RUNNING)  # no cost until it ends
        state = credit(staff_client)["credit"]
        assert (state["spent_since_usd"], state["balance_usd"], state["low"]) == (12.75, 87.25, False)

    def test_a_new_amount_starts_the_count_again(self, staff_client: APIClient, alice: AbstractUser) -> None:
        configure(staff_client, {"credit_balance_usd": 100})
        job = completed(alice, "30.00")
        assert credit(staff_client)["credit"]["balance_usd"] == 70
        configure(staff_client, {"credit_balance_usd": 500})
        # The job ended before the new amount was stated (microseconds apart at most: made explicit).
        set_at = ProviderConfig.objects.get(name="local").credit_balance_set_at
        assert set_at is not None
        Job.objects.filter(pk=job.pk).update(completed_at=set_at - timedelta(seconds=1))
        assert credit(staff_client)["credit"]["balance_usd"] == 500


class TestMetric:
    @pytest.fixture(autouse=True)
    def provider_category(self, settings: SettingsWrapper) -> None:
        settings.SIMPLETUNER_METRICS_CACHE_SECONDS = 0
        metrics_config_update(prometheus_enabled=True, prometheus_categories=["provider"])

    def test_the_balance_is_exported_per_provider_with_an_amount(
        self, staff_client: APIClient, alice: AbstractUser, anon: APIClient
    ) -> None:
        scrape = Scraper(anon)
        assert BALANCE not in scrape.text()
        configure(staff_client, {"credit_balance_usd": 25})
        assert scrape()[(BALANCE, (("provider", "local"),))] == 25
        completed(alice, "30.00")
        values = scrape()
        assert values[(BALANCE, (("provider", "local"),))] == -5  # overspent: the provider bills it
        assert (BALANCE, (("provider", "replicate"),)) not in values
        assert promtool_findings(scrape.text()) == []


class TestLowCredit:
    def test_health_is_degraded_with_the_reason_below_the_low_mark(
        self, staff_client: APIClient, anon: APIClient, alice: AbstractUser
    ) -> None:
        configure(staff_client, {"credit_balance_usd": 50, "credit_low_usd": 20})
        above = health(anon)
        assert (above["status"], above["message"]) == ("healthy", "Local jobs can run")
        assert above["details"]["credit"]["balance_usd"] == 50
        completed(alice, "30.00")
        low = health(anon)
        assert low["status"] == "degraded"
        assert low["message"] == "Local jobs can run; credit low: $20.00 (low mark $20.00)"
        assert low["details"]["credit"]["low"] is True

    def test_a_provider_without_an_amount_is_never_degraded_by_credit(
        self, anon: APIClient, alice: AbstractUser
    ) -> None:
        completed(alice, "1000.00")
        found = health(anon)
        assert found["status"] == "healthy" and "credit" not in found.get("details", {})

    def test_submissions_carry_a_warning_only_while_credit_is_low(
        self, staff_client: APIClient, alice_client: APIClient
    ) -> None:
        configure(staff_client, {"credit_balance_usd": 50, "credit_low_usd": 20})
        response = submit(alice_client)
        assert response.status_code == 201 and response.json()["warnings"] == []
        configure(staff_client, {"credit_balance_usd": 10})
        response = submit(alice_client)
        assert response.status_code == 201  # warned, not refused
        assert response.json()["warnings"] == ["local is low on credit: $10.00 (low mark $20.00)."]


class TestAdmin:
    def test_the_admin_sets_the_amount_and_stamps_it(self, admin_client: Client) -> None:
        config = provider_config_get("local")
        page = admin_client.get(change_url(config)).content.decode()
        assert "Not tracked (no credit amount set)." in page
        response = admin_client.post(
            change_url(config), form_data(config, credit_balance_usd="80", credit_low_usd="90")
        )
        assert response.status_code == 302, response.context["adminform"].form.errors
        config.refresh_from_db()
        assert config.credit_balance_usd == Decimal("80") and config.credit_balance_set_at is not None
        page = admin_client.get(change_url(config)).content.decode()
        assert "$80.00 left of $80.00 set" in page and "LOW: health degraded" in page

    def test_a_negative_amount_is_a_form_error(self, admin_client: Client) -> None:
        config = provider_config_get("local")
        response = admin_client.post(change_url(config), form_data(config, credit_balance_usd="-5"))
        assert response.status_code == 200
        assert set(response.context["adminform"].form.errors) == {"credit_balance_usd"}
        config.refresh_from_db()
        assert config.credit_balance_usd is None
