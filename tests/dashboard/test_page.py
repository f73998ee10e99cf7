"""The admin index as an operations dashboard: who sees which panel, what it costs in
queries, and that it renders on an empty database and with a broken health component."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from providers.models import Job, JobStatus
from tests.conftest import grant
from tests.dashboard import seed

pytestmark = pytest.mark.django_db

PANELS = ["dash-health", "dash-spend", "dash-jobs", "dash-webhooks", "dash-failed"]


def client_of(user: AbstractUser) -> Client:
    client = Client()
    client.force_login(user)
    return client


def index(client: Client) -> str:
    response = client.get("/admin/")
    assert response.status_code == 200
    return response.content.decode()


def seed_everything(owner: AbstractUser, post_webhook: Callable[..., Any], local_job: Job, jobs: int) -> None:
    now = timezone.now()
    seed.limit("local", "10.00")
    for i in range(jobs):
        seed.job(owner, created=now - timedelta(hours=i), status=JobStatus.FAILED, error=f"boom {i}")
        seed.job(owner, created=now - timedelta(hours=i), completed_at=now, cost_usd=Decimal("0.10"))
    seed.webhook_traffic(post_webhook, local_job)


def test_an_operator_sees_every_panel_above_the_app_list(admin_client: Client) -> None:
    page = index(admin_client)
    for panel in PANELS:
        assert f'id="{panel}"' in page, panel
    assert 'href="/admin/providers/job/"' in page, "the app list is still there"
    assert page.index('id="dashboard"') < page.index('class="app-providers module')
    assert 'id="recent-actions-module"' in page
    assert "<script" not in page.split('id="dashboard"')[1].split('id="content-related"')[0], "no JavaScript"


def test_view_site_goes_to_the_api_docs(admin_client: Client) -> None:
    page = index(admin_client)
    assert '<a href="/api/docs/">' in page
    assert admin_client.get("/api/docs/").status_code == 200


def test_an_empty_database_renders_every_panel_with_zeros(admin_client: Client) -> None:
    page = index(admin_client)
    assert "No failed jobs." in page
    assert 'data-status="total">0<' in page
    assert 'data-field="spent">0.00<' in page
    assert 'data-field="applied">0<' in page


def test_a_failed_job_links_to_its_admin_page_with_its_error_escaped(admin_client: Client, alice: AbstractUser) -> None:
    job = seed.job(alice, created=timezone.now(), status=JobStatus.FAILED, error="<script>alert(1)</script> OOM")
    page = index(admin_client)
    assert f'href="/admin/providers/job/{job.pk}/change/"' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; OOM" in page
    assert "<script>alert(1)" not in page


@pytest.mark.parametrize("who", ["anonymous", "alice"])
def test_people_without_staff_status_are_sent_to_the_login_page(who: str, alice: AbstractUser) -> None:
    client = Client() if who == "anonymous" else client_of(alice)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_see_health_and_only_the_panels_they_may_view(clerk: AbstractUser) -> None:
    page = index(client_of(clerk))
    assert 'id="dash-health"' in page
    for panel in ["dash-spend", "dash-jobs", "dash-webhooks", "dash-failed"]:
        assert f'id="{panel}"' not in page, panel
    page = index(client_of(grant(clerk, "providers.view_job")))
    assert 'id="dash-jobs"' in page and 'id="dash-failed"' in page
    assert 'id="dash-spend"' not in page and 'id="dash-webhooks"' not in page


def test_the_query_count_does_not_grow_with_the_data(
    admin_client: Client, olivia: AbstractUser, post_webhook: Callable[..., Any], local_job: Job
) -> None:
    index(admin_client)  # creates the provider rows on first use, as the API does
    with CaptureQueriesContext(connection) as empty:
        index(admin_client)
    seed_everything(olivia, post_webhook, local_job, jobs=30)
    with CaptureQueriesContext(connection) as full:
        page = index(admin_client)
    assert 'data-field="rejected">' in page and "boom 0" in page
    assert len(full) == len(empty), [q["sql"] for q in full.captured_queries]


def test_the_dashboard_is_a_bounded_number_of_queries(
    admin_client: Client,
    olivia: AbstractUser,
    post_webhook: Callable[..., Any],
    local_job: Job,
    django_assert_max_num_queries: Any,
) -> None:
    seed_everything(olivia, post_webhook, local_job, jobs=5)
    index(admin_client)
    # Session and user (2); the health checks (10, as /api/cloud/health costs); jobs per day
    # (1) and failed jobs (1); two providers' rows and their spend (4); webhook traffic (the
    # retention bound, three audit groupings, the replay records: 5); the recent actions (1).
    with django_assert_max_num_queries(24):
        index(admin_client)


def test_a_broken_health_component_shows_unhealthy_and_the_page_still_renders(
    admin_client: Client, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    checks = [*settings.HEALTH_CHECKS, "tests.dashboard.no_such_module.check_nothing"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(settings, "OUTPUTS_DIR", blocker / "outputs")
        patch.setattr(settings, "HEALTH_CHECKS", checks)
        page = index(admin_client)
    health = page.split('id="dash-health"')[1].split("</section>")[0]
    assert 'Health: <span class="dash-status dash-status-unhealthy">unhealthy' in health
    storage = health.split('data-component="output_storage"')[1].split("</tr>")[0]
    assert "dash-status-unhealthy" in storage and "Output storage unavailable" in storage
    broken = health.split('data-component="nothing"')[1].split("</tr>")[0]
    assert "dash-status-unhealthy" in broken and "ModuleNotFoundError" in broken
    assert 'data-component="database"' in health, "the other components are still checked"
    assert 'id="dash-jobs"' in page


def test_each_rejection_reason_links_to_its_audit_entries(
    admin_client: Client, post_webhook: Callable[..., Any], local_job: Job
) -> None:
    seed.webhook_traffic(post_webhook, local_job)
    page = index(admin_client)
    links = {
        "signature 2": "?event_type=webhook_rejected&target_id=local&details__reason=signature",
        "rate_limited 1": "?event_type=rate_limited&target_id=/api/webhooks/local",
        "ip_not_allowed 1": "?event_type=webhook_rejected&target_id=replicate&details__reason=ip_not_allowed",
    }
    for text, query in links.items():
        url = f"/admin/audit/auditentry/{query}"
        assert f'<a href="{url.replace("&", "&amp;")}">{text}</a>' in page, text
        listed = admin_client.get(url)
        assert listed.status_code == 200, text
        assert listed.context["cl"].result_count == int(text.split()[-1]), text
