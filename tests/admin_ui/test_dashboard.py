"""The admin index as an operator sees it in Chromium: every panel's figures for seeded jobs,
spend and webhook traffic, links to the failed jobs, charts drawn inline, and a full-page
screenshot saved for a person to look at (CLOUDOPS_SCREENSHOTS, default test-output/screenshots/)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone
from playwright.sync_api import Page

from providers.dashboard import day_starts
from providers.models import Job, JobStatus
from tests.admin_ui.browser import admin_login
from tests.dashboard import seed

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
# Statuses of the jobs created on each of the seven days, oldest day first.
WEEK = [
    ["completed"] * 3,
    ["completed", "failed"],
    [],
    ["completed"] * 5 + ["cancelled"],
    ["completed", "completed", "failed"],
    ["completed"] * 4,
    ["running", "queued", "failed", "completed"],
]


def screenshot_dir() -> Path:
    return Path(os.environ.get("CLOUDOPS_SCREENSHOTS") or REPO / "test-output" / "screenshots")


def seed_week(owner: AbstractUser) -> list[Job]:
    """WEEK's jobs, each a minute into its day (UTC, the server's time zone); returns the failed ones."""
    now = timezone.now()
    failed = []
    for start, statuses in zip(day_starts(now=now, days=7, tz=UTC), WEEK, strict=False):
        for i, status in enumerate(statuses):
            created = min(start + timedelta(minutes=1 + i), now)
            error = "CUDA out of memory: tried to allocate 2.00 GiB" if status == "failed" else ""
            cost = Decimal("1.25") if status == "completed" else Decimal("0")
            done = now if status in {"completed", "failed", "cancelled"} else None
            job = seed.job(owner, created=created, status=status, error=error, cost_usd=cost, completed_at=done)
            if status == JobStatus.FAILED:
                failed.append(job)
    return failed


def cell(page: Page, row: str, field: str) -> str:
    return page.inner_text(f"{row} td[{field}]").strip()


@pytest.fixture
def failed(alice: AbstractUser, post_webhook: Callable[..., Any], local_job: Job) -> list[Job]:
    """The week's jobs, a $40 limit for `local` and webhook traffic; the failed jobs.
    Seeded before the browser starts: Playwright's event loop in this thread would stop the
    deliveries' live events from being published (they are sent with async_to_sync)."""
    jobs = seed_week(alice)
    seed.limit("local", "40.00")
    seed.webhook_traffic(post_webhook, local_job)
    return jobs


def test_the_dashboard_shows_each_panels_figures_and_is_screenshotted(
    failed: list[Job], page: Page, live_server: Any, olivia: AbstractUser
) -> None:
    page.set_viewport_size({"width": 1400, "height": 900})
    admin_login(page, live_server.url, "olivia")  # lands on /admin/

    # Health: the same components as /api/cloud/health.
    assert page.is_visible("#dash-health tr[data-component=database] .dash-status-healthy")

    # Jobs per day: the table under the chart, and the chart itself (inline SVG, no script).
    rows = page.locator("#dash-jobs-table tbody tr")
    assert rows.count() == 7
    totals = [int(rows.nth(i).locator("td[data-status=total]").inner_text()) for i in range(7)]
    # The local job the webhooks are for was created now: today has one more (queued, now running).
    assert totals == [len(day) for day in WEEK[:-1]] + [len(WEEK[-1]) + 1]
    today = rows.nth(6)
    assert today.locator("td[data-status=failed]").inner_text() == "1"
    assert today.locator("td[data-status=running]").inner_text() == "2"
    # One bar segment per status present on a day.
    assert page.locator("svg#jobs-per-day rect").count() == sum(len(set(day)) for day in WEEK)
    assert (page.text_content("#jobs-per-day-title") or "").startswith("Jobs created per day, last 7 days (UTC)")
    assert page.get_attribute("svg#jobs-per-day", "aria-labelledby") == "jobs-per-day-title jobs-per-day-desc"

    # Spend: 16 jobs completed (now, so in this month) at $1.25 each, against $40.
    assert sum(day.count("completed") for day in WEEK) == 16
    spend = "#dash-spend tr[data-provider=local]"
    assert (cell(page, spend, "data-field=spent"), cell(page, spend, "data-field=limit")) == ("20.00", "40.00")
    assert cell(page, spend, "data-field=percent") == "50%"
    assert cell(page, "#dash-spend tr[data-provider=replicate]", "data-field=limit") == "no limit"

    # Webhooks in the last 24 h.
    local = "#dash-webhooks tr[data-provider=local]"
    assert cell(page, local, "data-field=applied") == "1"
    assert cell(page, local, "data-field=rejected") == "3"
    assert cell(page, local, "data-field=reasons") == "signature 2, rate_limited 1"
    assert cell(page, local, "data-field=recent") == "2"
    assert cell(page, "#dash-webhooks tr[data-provider=replicate]", "data-field=reasons") == "ip_not_allowed 1"

    # Recent failed jobs, newest first, each a link to its admin page.
    listed = page.locator("#dash-failed tbody tr")
    assert [listed.nth(i).get_attribute("data-job") for i in range(listed.count())] == [j.pk for j in failed[::-1]]
    assert "CUDA out of memory" in listed.first.inner_text()

    assert page.get_attribute("#user-tools a[href='/api/docs/']", "href") == "/api/docs/", "View site"
    assert page.is_visible("#content-main .app-providers"), "the app list is still on the page"

    path = screenshot_dir() / "admin-dashboard.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    print(f"dashboard screenshot: {path}")
    assert path.stat().st_size > 10_000

    listed.first.locator("a").click()
    page.wait_for_url(f"**/admin/providers/job/{failed[-1].pk}/change/")
