"""`promtool check metrics` (Prometheus' own linter and parser) on every template's output."""

from __future__ import annotations

import subprocess

import pytest
from rest_framework.test import APIClient

from tests.metrics.scrape import Scraper
from tests.services import require_tool

pytestmark = pytest.mark.django_db

# promtool's naming lint objects to "_ms" in a name (it wants _seconds). These two names are
# fixed by the guide (dashboards use them), so that one finding is accepted for them, and
# nothing else is.
CONTRACT_NAMES_WITH_MS = {"simpletuner_http_request_latency_ms_avg", "simpletuner_health_database_latency_ms"}
ACCEPTED = "metric names should not contain abbreviated units"


def promtool_findings(text: str) -> list[str]:
    done = subprocess.run(
        [require_tool("promtool"), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    findings = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    # Exit 1 is a parse error; 3 means lint findings only.
    assert done.returncode in (0, 3), findings
    return findings


@pytest.mark.parametrize("template", ["minimal", "standard", "security", "full"])
def test_every_template_passes_promtool(
    template: str,
    busy_instance: None,
    staff_client: APIClient,
    scrape: Scraper,
) -> None:
    assert staff_client.post(f"/api/cloud/metrics/config/templates/{template}").status_code == 200
    text = scrape.text()
    assert "simpletuner_jobs_total" in text
    unexpected = [
        line for line in promtool_findings(text) if not (ACCEPTED in line and line.split()[0] in CONTRACT_NAMES_WITH_MS)
    ]
    assert unexpected == []


def test_the_full_template_exports_every_metric_with_a_source(
    busy_instance: None,
    staff_client: APIClient,
    scrape: Scraper,
) -> None:
    staff_client.post("/api/cloud/metrics/config/templates/full")
    scrape()  # this process records Django's metrics from here (tests/metrics/test_django_metrics.py)
    staff_client.get("/api/cloud/jobs")
    names = {name for name, _ in scrape()}
    assert {"django_http_requests_latency_seconds_by_view_method_count", "django_db_execute_total"} <= names
    # The guide's list (busy_instance sets a credit amount, so the balance is among them).
    assert {name for name in names if not name.startswith("django_")} == {
        "simpletuner_jobs_total",
        "simpletuner_jobs_by_status",
        "simpletuner_jobs_active",
        "simpletuner_cost_usd_total",
        "simpletuner_job_duration_seconds_avg",
        "simpletuner_http_requests_total",
        "simpletuner_http_errors_total",
        "simpletuner_http_request_latency_ms_avg",
        "simpletuner_rate_limit_violations_total",
        "simpletuner_rate_limit_tracked_clients",
        "simpletuner_approval_requests_pending",
        "simpletuner_approval_requests_by_status",
        "simpletuner_quota_percent_used",
        "simpletuner_audit_log_entries_total",
        "simpletuner_audit_log_entries_24h",
        "simpletuner_audit_chain_verified",
        "simpletuner_audit_chain_full_verification_timestamp_seconds",
        "simpletuner_uptime_seconds",
        "simpletuner_health_database_latency_ms",
        "simpletuner_backup_last_success_timestamp_seconds",
        "simpletuner_circuit_breaker_state",
        "simpletuner_circuit_breaker_failures_total",
        "simpletuner_cost_limit_percent_used",
        "simpletuner_credit_balance_usd",
        "simpletuner_notifications_sent_total",
        "simpletuner_notification_failures_total",
        "simpletuner_notification_queue_depth",
    }


def test_promtool_does_catch_a_bad_exposition() -> None:
    # The check above means something only if promtool rejects what is wrong.
    findings = promtool_findings("# TYPE simpletuner_x gauge\n# HELP simpletuner_x fine\nsimpletuner_x_total 1\n")
    assert findings
