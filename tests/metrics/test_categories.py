"""Each category's metrics follow what happens: jobs, HTTP requests, audit entries, health,
circuit breakers, cost limits. Values come from the real services, never made up."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper
from rest_framework.test import APIClient

from audit.services import audit_record
from cloudops.auditing import Actor
from providers.circuit import circuit_record_failure
from providers.config import provider_config_get, provider_config_update
from providers.jobs import job_transition
from providers.models import Job, JobStatus
from tests.metrics.scrape import Scraper, types
from tests.providers.helpers import submit

pytestmark = pytest.mark.django_db


def a_job(owner: AbstractUser, **fields: object) -> Job:
    return Job.objects.create(owner=owner, provider="local", hardware="local", **fields)


def finish(job: Job, status: str, *, run_seconds: float, cost: str) -> None:
    job_transition(job=job, to=status, fields={"run_seconds": run_seconds, "cost_usd": Decimal(cost)})


class TestJobs:
    def test_a_job_submitted_through_the_api_is_counted(self, scrape: Scraper, enable, alice_client: APIClient) -> None:  # type: ignore[no-untyped-def]
        enable("jobs")
        assert scrape.value("simpletuner_jobs_total") == 0
        assert submit(alice_client).status_code == 201
        after = scrape()
        assert after[("simpletuner_jobs_total", ())] == 1
        assert (
            after[("simpletuner_jobs_active", ())] + after[("simpletuner_jobs_by_status", (("status", "completed"),))]
            == 1
        )

    def test_statuses_costs_and_durations_follow_the_jobs(self, scrape: Scraper, enable, alice: AbstractUser) -> None:  # type: ignore[no-untyped-def]
        enable("jobs")
        running, done, failed, waiting = (a_job(alice) for _ in range(4))
        for job in (running, done, failed):
            job_transition(job=job, to=JobStatus.RUNNING)
        finish(done, JobStatus.COMPLETED, run_seconds=100, cost="1.25")
        finish(failed, JobStatus.FAILED, run_seconds=50, cost="0.50")
        values = scrape()
        by_status = {
            dict(labels)["status"]: v for (name, labels), v in values.items() if name == "simpletuner_jobs_by_status"
        }
        assert by_status == {
            "pending_approval": 0,
            "pending": 1,
            "uploading": 0,
            "queued": 0,
            "running": 1,
            "completed": 1,
            "failed": 1,
            "cancelled": 0,
        }
        assert values[("simpletuner_jobs_total", ())] == 4
        assert values[("simpletuner_jobs_active", ())] == 2
        assert values[("simpletuner_cost_usd_total", ())] == 1.75
        assert values[("simpletuner_job_duration_seconds_avg", ())] == 75

    def test_no_average_duration_is_exported_before_a_job_has_one(
        self, scrape: Scraper, enable, alice: AbstractUser
    ) -> None:  # type: ignore[no-untyped-def]
        enable("jobs")
        a_job(alice)
        assert "simpletuner_job_duration_seconds_avg" not in scrape.text()

    def test_types_are_counters_only_for_values_that_never_decrease(self, scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
        enable("jobs")
        assert types(scrape.text()) == {
            "simpletuner_jobs_total": "counter",
            "simpletuner_jobs_by_status": "gauge",
            "simpletuner_jobs_active": "gauge",
            "simpletuner_cost_usd_total": "counter",
        }


class TestHttp:
    def test_requests_errors_and_latency_are_counted_per_route_pattern(  # type: ignore[no-untyped-def]
        self, scrape: Scraper, enable, alice_client: APIClient, alice: AbstractUser
    ) -> None:
        enable("http")
        job = a_job(alice)
        for _ in range(3):
            assert alice_client.get(f"/api/cloud/jobs/{job.pk}").status_code == 200
        assert alice_client.get("/api/cloud/jobs/job-doesnotexist").status_code == 404
        assert APIClient().get("/api/cloud/jobs").status_code == 401
        text = scrape.text()
        values = scrape()
        route = "GET_/api/cloud/jobs/<str:job_id>"
        assert values[("simpletuner_http_requests_total", (("endpoint", route),))] == 4
        assert values[("simpletuner_http_errors_total", (("endpoint_status", f"{route}_404"),))] == 1
        assert values[("simpletuner_http_errors_total", (("endpoint_status", "GET_/api/cloud/jobs_401"),))] == 1
        assert values[("simpletuner_http_request_latency_ms_avg", (("endpoint", route),))] > 0
        # Route patterns, never the raw paths with ids.
        assert job.pk not in text and "job-doesnotexist" not in text

    def test_a_submission_has_the_guides_endpoint_label(self, scrape: Scraper, enable, alice_client: APIClient) -> None:  # type: ignore[no-untyped-def]
        enable("http")
        submit(alice_client)
        submit(alice_client, {"provider": "nowhere"})
        values = scrape()
        assert values[("simpletuner_http_requests_total", (("endpoint", "POST_/api/cloud/jobs/submit"),))] == 2
        errors = [labels for (name, labels), _ in values.items() if name == "simpletuner_http_errors_total"]
        assert errors == [(("endpoint_status", "POST_/api/cloud/jobs/submit_400"),)]

    def test_unmatched_paths_share_one_label(self, scrape: Scraper, enable, anon: APIClient) -> None:  # type: ignore[no-untyped-def]
        enable("http")
        anon.get("/api/cloud/no-such-thing/123")
        anon.get("/wp-login.php")
        text = scrape.text()
        assert 'simpletuner_http_requests_total{endpoint="unmatched"} 2.0' in text
        assert 'simpletuner_http_errors_total{endpoint_status="unmatched_404"} 2.0' in text
        assert "wp-login" not in text and "no-such-thing" not in text

    def test_s3_routes_are_labelled_by_their_pattern(self, scrape: Scraper, enable, anon: APIClient) -> None:  # type: ignore[no-untyped-def]
        enable("http")
        anon.get("/api/cloud/storage/job-abc/some/key.bin")
        text = scrape.text()
        assert re.search(r'endpoint_status="GET_/api/cloud/storage/<bucket>/<key>_40\d"', text), text

    @pytest.mark.server_errors_expected("a view that raises, to count the 500")
    @pytest.mark.urls("tests.logs.urls")
    def test_a_view_that_raises_is_counted_as_a_500(self, scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
        enable("http")
        client = Client(raise_request_exception=False)
        assert client.get("/test/boom").status_code == 500
        assert scrape.value("simpletuner_http_errors_total", endpoint_status="GET_/test/boom_500") == 1
        assert scrape.value("simpletuner_http_requests_total", endpoint="GET_/test/boom") == 1

    def test_the_scrapes_own_requests_count_too(self, scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
        enable("http")
        scrape()
        assert scrape.value("simpletuner_http_requests_total", endpoint="GET_/api/cloud/metrics/prometheus") >= 1


class TestAudit:
    def test_an_audit_entry_raises_the_total_and_the_last_24h(self, scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
        enable("audit")
        before = scrape()
        audit_record(event_type="backup.created", actor=Actor(username="cron"), target_type="backup", target_id="x")
        after = scrape()
        for name in ("simpletuner_audit_log_entries_total", "simpletuner_audit_log_entries_24h"):
            assert after[(name, ())] == before[(name, ())] + 1


class TestHealth:
    def test_uptime_and_database_latency_are_real_measurements(self, scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
        enable("health")
        first = scrape()
        second = scrape()
        assert second[("simpletuner_uptime_seconds", ())] >= first[("simpletuner_uptime_seconds", ())] > 0
        assert first[("simpletuner_health_database_latency_ms", ())] > 0


class TestCircuitBreakers:
    def test_failures_count_up_and_the_state_opens(self, scrape: Scraper, enable, settings: SettingsWrapper) -> None:  # type: ignore[no-untyped-def]
        settings.SIMPLETUNER_CIRCUIT_FAILURE_THRESHOLD = 2
        enable("circuit_breakers")
        assert scrape.value("simpletuner_circuit_breaker_state", provider="replicate") == 0
        assert scrape.value("simpletuner_circuit_breaker_failures_total", provider="replicate") == 0
        circuit_record_failure("replicate", probe=False, error="HTTP 503")
        assert scrape.value("simpletuner_circuit_breaker_failures_total", provider="replicate") == 1
        assert scrape.value("simpletuner_circuit_breaker_state", provider="replicate") == 0
        circuit_record_failure("replicate", probe=False, error="HTTP 503")
        assert scrape.value("simpletuner_circuit_breaker_state", provider="replicate") == 2
        assert scrape.value("simpletuner_circuit_breaker_failures_total", provider="local") == 0


class TestProvider:
    def test_cost_limit_use_follows_spending_and_no_balance_is_invented(  # type: ignore[no-untyped-def]
        self, scrape: Scraper, enable, alice: AbstractUser
    ) -> None:
        enable("provider")
        # No provider has a cost limit yet: nothing to report.
        assert scrape.text() == ""
        config = provider_config_get("local")
        provider_config_update(
            provider_config=config,
            changes={"cost_limit_enabled": True, "cost_limit_amount": Decimal("10.00")},
            actor=Actor(username="olivia"),
        )
        assert scrape.value("simpletuner_cost_limit_percent_used", provider="local") == 0
        job = a_job(alice)
        finish(job, JobStatus.COMPLETED, run_seconds=10, cost="2.50")
        text = scrape.text()
        assert 'simpletuner_cost_limit_percent_used{provider="local"} 25.0' in text
        assert "replicate" not in text
        assert "simpletuner_credit_balance_usd" not in text


class TestApprovals:
    def test_approvals_export_their_two_series_and_nothing_else(self, scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
        # What the series count is tested in tests/governance/test_metrics.py.
        enable("approvals")
        assert {name for name, _ in scrape()} == {
            "simpletuner_approval_requests_pending",
            "simpletuner_approval_requests_by_status",
        }


class TestRateLimits:
    def test_a_429_counts_a_violation_and_its_client_is_tracked(self, scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
        enable("rate_limits")
        before = scrape()
        violations = before[("simpletuner_rate_limit_violations_total", ())]
        tracked = before[("simpletuner_rate_limit_tracked_clients", ())]
        flooder = Client(REMOTE_ADDR="203.0.113.77")  # not localhost: localhost is never limited
        statuses = [flooder.post("/api/auth/login", {}, content_type="application/json").status_code for _ in range(7)]
        assert statuses.count(429) == 2  # the login rule admits 5 a minute
        after = scrape()
        assert after[("simpletuner_rate_limit_violations_total", ())] == violations + 2
        assert after[("simpletuner_rate_limit_tracked_clients", ())] == tracked + 1
