"""The `approvals` metrics category: requests per status, from the database, so a scrape of
any server process reports decisions made by another; and the output passes promtool."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from cloudops.metrics.services import metrics_config_update
from governance.approvals import approvals_expire
from governance.models import ApprovalRequest, ApprovalRule
from providers.models import Job
from tests.conftest import client_for
from tests.metrics.live import servers
from tests.metrics.scrape import PROMETHEUS_PATH, Scraper, samples, types
from tests.metrics.test_promtool import promtool_findings
from tests.providers.helpers import QUICK, submit

PENDING = ("simpletuner_approval_requests_pending", ())


def by_status(values: dict) -> dict[str, float]:  # type: ignore[type-arg]
    return {
        dict(labels)["status"]: v
        for (name, labels), v in values.items()
        if name == "simpletuner_approval_requests_by_status"
    }


def held(client: APIClient) -> Job:
    response = submit(client, {"provider": "local", "config": QUICK})
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "pending_approval"
    return Job.objects.get(pk=response.json()["job_id"])


@pytest.fixture
def local_rule(db: None) -> ApprovalRule:
    return ApprovalRule.objects.create(name="local jobs", condition="provider", threshold="local")


@pytest.fixture
def scrape(anon: APIClient) -> Scraper:
    return Scraper(anon)


@pytest.mark.django_db
class TestInProcess:
    @pytest.fixture(autouse=True)
    def enabled(self, db: None) -> None:
        metrics_config_update(prometheus_enabled=True, prometheus_categories=["approvals"])

    def test_every_status_is_listed_and_zero_is_a_real_count(self, scrape: Scraper) -> None:
        values = scrape()
        assert values[PENDING] == 0
        assert by_status(values) == {"pending": 0, "approved": 0, "rejected": 0, "expired": 0}
        assert types(scrape.text())["simpletuner_approval_requests_pending"] == "gauge"

    def test_counts_follow_holds_and_decisions(
        self,
        scrape: Scraper,
        alice_client: APIClient,
        lena_client: APIClient,
        local_rule: ApprovalRule,
        settings: SettingsWrapper,
    ) -> None:
        first, second, third, fourth = (held(alice_client) for _ in range(4))
        assert scrape()[PENDING] == 4
        reason = {"reason": "no"}
        assert (
            lena_client.post(f"/api/approvals/requests/{first.approval.pk}/reject", reason, format="json").status_code
            == 200
        )
        assert (
            lena_client.post(f"/api/approvals/requests/{second.approval.pk}/approve", {}, format="json").status_code
            == 200
        )
        ApprovalRequest.objects.filter(pk=third.approval.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        assert approvals_expire() == 1
        values = scrape()
        assert values[PENDING] == 1
        assert by_status(values) == {"pending": 1, "approved": 1, "rejected": 1, "expired": 1}
        assert ApprovalRequest.objects.get(job=fourth).status == "pending"

    def test_the_output_passes_promtool(
        self, scrape: Scraper, alice_client: APIClient, local_rule: ApprovalRule
    ) -> None:
        held(alice_client)
        assert promtool_findings(scrape.text()) == []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_decision_made_in_one_process_shows_in_the_other(
    tmp_path: Path, alice: AbstractUser, lena: AbstractUser, local_rule: ApprovalRule
) -> None:
    metrics_config_update(prometheus_enabled=True, prometheus_categories=["approvals"])
    job = held(client_for(alice))
    lead_key = client_for(lena).raw_key  # type: ignore[attr-defined]
    with ExitStack() as stack:
        first, second = stack.enter_context(servers(2, tmp_path))
        assert samples(httpx.get(first + PROMETHEUS_PATH, timeout=10).text)[PENDING] == 1
        response = httpx.post(
            f"{second}/api/approvals/requests/{job.approval.pk}/reject",
            json={"reason": "over budget"},
            headers={"Authorization": f"Bearer {lead_key}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        # No flush interval: the next scrape of the other process already counts it.
        values = samples(httpx.get(first + PROMETHEUS_PATH, timeout=10).text)
        assert values[PENDING] == 0
        assert by_status(values)["rejected"] == 1
