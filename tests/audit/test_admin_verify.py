from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client

from audit.models import AuditVerification
from audit.services import audit_record
from audit.verification import audit_verify
from tests.audit import tamper

pytestmark = pytest.mark.django_db

VERIFY = "/admin/audit/auditentry/verify/"


def seed(n: int) -> None:
    for i in range(n):
        audit_record(event_type="job.submitted", target_id=str(i))


def test_the_changelist_says_the_chain_was_never_verified(admin_client: Client) -> None:
    seed(2)
    page = admin_client.get("/admin/audit/auditentry/").content.decode()
    assert "has not been verified yet" in page
    assert VERIFY in page
    assert "head signature valid" in page


def test_the_changelist_shows_the_latest_result(admin_client: Client) -> None:
    seed(3)
    tamper.edit_entry(2, action="rewritten")
    audit_verify(trigger="command")
    page = admin_client.get("/admin/audit/auditentry/").content.decode()
    assert "FAILED: edited at #2" in page


def test_the_verify_page_runs_a_verification_on_post(admin_client: Client) -> None:
    seed(3)
    assert "Verify now" in admin_client.get(VERIFY).content.decode()
    assert not AuditVerification.objects.exists()
    page = admin_client.post(VERIFY, {"from_sequence": "", "to_sequence": ""}).content.decode()
    assert "The chain verifies: 4 entries checked" in page
    assert AuditVerification.objects.get().trigger == "admin"


def test_the_verify_page_reports_a_failure(admin_client: Client) -> None:
    seed(3)
    tamper.delete_entries(3, 4)
    page = admin_client.post(VERIFY, {}).content.decode()
    assert "FAILED: truncated at #3" in page


def test_the_verify_page_checks_a_range_and_explains_a_bad_one(admin_client: Client) -> None:
    seed(3)
    assert "(#2 to #3)" in admin_client.post(VERIFY, {"from_sequence": 2, "to_sequence": 3}).content.decode()
    page = admin_client.post(VERIFY, {"from_sequence": 3, "to_sequence": 2}).content.decode()
    assert "Must not be lower than from_sequence." in page
    page = admin_client.post(VERIFY, {"to_sequence": 40}).content.decode()
    assert "Must be at most 4, the last entry." in page
    assert AuditVerification.objects.count() == 1


def test_the_verify_page_is_for_staff_with_view_permission(alice: AbstractUser, make_user) -> None:  # type: ignore[no-untyped-def]
    anonymous = Client().get(VERIFY)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client = Client()
    client.force_login(alice)
    assert client.get(VERIFY).status_code == 302  # not staff: back to the login page
    clerk = make_user("clerk", staff=True)  # staff, but no permission on audit entries
    client.force_login(clerk)
    assert client.get(VERIFY).status_code == 403
    assert client.post(VERIFY, {}).status_code == 403
    assert not AuditVerification.objects.exists()
