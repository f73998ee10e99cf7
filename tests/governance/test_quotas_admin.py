"""Quotas in the admin: the same checks as the API, and every change audited."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client

from audit.models import AuditEntry
from governance.models import Quota

pytestmark = pytest.mark.django_db

FORM = {"scope": "user", "target": "alice", "quota_type": "concurrent_jobs", "limit": "2", "action": "queue"}


@pytest.fixture
def admin_site(olivia: AbstractUser) -> Client:
    client = Client()
    client.force_login(olivia)
    return client


def test_an_admin_adds_a_quota_in_the_admin(admin_site: Client, alice: AbstractUser) -> None:
    response = admin_site.post("/admin/governance/quota/add/", FORM)
    assert response.status_code == 302
    quota = Quota.objects.get()
    assert (quota.target, quota.limit, quota.action) == ("alice", 2, "queue")
    assert AuditEntry.objects.filter(event_type="admin.added", target_id=str(quota.pk)).exists()
    assert admin_site.get("/admin/governance/quota/").status_code == 200


def test_the_admin_refuses_what_the_api_refuses(admin_site: Client, alice: AbstractUser) -> None:
    Quota.objects.create(scope="global", quota_type="concurrent_jobs", limit=1)
    response = admin_site.post(
        "/admin/governance/quota/add/", {**FORM, "target": "nobody", "quota_type": "jobs_per_day", "limit": "1.5"}
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "no user named" in str(errors["target"])
    assert "concurrent_jobs only" in str(errors["action"])
    assert "whole number" in str(errors["limit"])
    above = admin_site.post("/admin/governance/quota/add/", {**FORM, "limit": "3"})
    assert "above the global concurrent_jobs quota" in str(above.context["adminform"].form.errors["limit"])
    assert Quota.objects.count() == 1


def test_the_admin_list_shows_a_job_count_without_decimals(admin_site: Client) -> None:
    jobs = Quota.objects.create(scope="global", quota_type="concurrent_jobs", limit=2)
    spend = Quota.objects.create(scope="global", quota_type="monthly_spend_usd", limit=150)
    page = admin_site.get("/admin/governance/quota/").content.decode()
    assert '<td class="field-shown_limit">2</td>' in page
    assert '<td class="field-shown_limit">150.00</td>' in page
    assert (str(jobs), str(spend)) == ("global: concurrent_jobs 2 (block)", "global: monthly_spend_usd 150.00 (block)")
