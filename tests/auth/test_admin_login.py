"""The admin's login and password forms are audited like the API login (review finding 1)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client

from audit.models import AuditEntry
from audit.services import audit_record
from tests.audit import tamper
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

CLIENT = "203.0.113.60"
NEW_PASSWORD = "another long passphrase"


def browser(**defaults: object) -> Client:
    return Client(REMOTE_ADDR=CLIENT, HTTP_USER_AGENT="Mozilla/5.0 (X11) Firefox/128.0", **defaults)


def login_form(client: Client, username: str, password: str):  # type: ignore[no-untyped-def]
    return client.post("/admin/login/", {"username": username, "password": password})


def test_a_wrong_password_at_the_admin_form_is_audited_with_ip_and_user_agent(olivia: AbstractUser) -> None:
    response = login_form(browser(), "olivia", "guess")
    assert response.status_code == 200
    assert "Please enter the correct username and password" in response.content.decode()
    entry = AuditEntry.objects.get(event_type="auth.login.failed")
    assert (entry.actor_username, entry.actor_ip, entry.target_id) == ("olivia", CLIENT, "olivia")
    assert entry.details == {"user_agent": "Mozilla/5.0 (X11) Firefox/128.0", "path": "/admin/login/"}


def test_a_login_through_the_admin_form_is_audited_once(olivia: AbstractUser) -> None:
    client = browser()
    response = login_form(client, "olivia", PASSWORD)
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
    entry = AuditEntry.objects.get(event_type="auth.login.success")
    assert (entry.actor_username, entry.actor_ip, entry.target_id) == ("olivia", CLIENT, str(olivia.pk))
    assert entry.details["path"] == "/admin/login/"


def test_the_right_password_of_a_non_staff_account_is_a_failed_admin_login(alice: AbstractUser) -> None:
    client = browser()
    response = login_form(client, "alice", PASSWORD)
    assert response.status_code == 200
    assert "for a staff account" in response.content.decode()
    assert client.get("/admin/").status_code == 302
    entry = AuditEntry.objects.get(event_type="auth.login.failed")
    assert (entry.actor_username, entry.details["reason"]) == ("alice", "not staff")
    assert not AuditEntry.objects.filter(event_type="auth.login.success").exists()


def test_a_user_agent_is_kept_truncated(olivia: AbstractUser) -> None:
    login_form(Client(REMOTE_ADDR=CLIENT, HTTP_USER_AGENT="x" * 5000), "olivia", "guess")
    assert AuditEntry.objects.get(event_type="auth.login.failed").details["user_agent"] == "x" * 500


def test_an_admin_login_that_cannot_be_audited_starts_no_session(olivia: AbstractUser) -> None:
    audit_record(event_type="job.submitted")
    tamper.edit_head(mac="0" * 64)
    client = browser(raise_request_exception=False)
    response = login_form(client, "olivia", PASSWORD)
    assert response.status_code == 503
    assert "sessionid" not in response.cookies
    assert client.get("/admin/").status_code == 302
    olivia.refresh_from_db()
    assert olivia.last_login is None
    assert not AuditEntry.objects.filter(event_type="auth.login.success").exists()


def change_password(client: Client, old: str):  # type: ignore[no-untyped-def]
    data = {"old_password": old, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    return client.post("/admin/password_change/", data)


def test_a_wrong_old_password_on_the_password_change_form_is_a_failed_login(olivia: AbstractUser) -> None:
    client = browser()
    client.force_login(olivia)
    response = change_password(client, "guess")
    assert response.status_code == 200
    assert "Your old password was entered incorrectly" in response.content.decode()
    olivia.refresh_from_db()
    assert olivia.check_password(PASSWORD)
    entry = AuditEntry.objects.get(event_type="auth.login.failed")
    assert (entry.actor_username, entry.actor_ip) == ("olivia", CLIENT)
    assert entry.details["reason"] == "wrong old password"
    assert entry.details["path"] == "/admin/password_change/"


def test_a_password_change_is_audited(olivia: AbstractUser) -> None:
    client = browser()
    client.force_login(olivia)
    assert change_password(client, PASSWORD).status_code == 302
    olivia.refresh_from_db()
    assert olivia.check_password(NEW_PASSWORD)
    entry = AuditEntry.objects.get(event_type="auth.password_changed")
    assert (entry.actor_username, entry.actor_ip, entry.target_id) == ("olivia", CLIENT, str(olivia.pk))
    assert not AuditEntry.objects.filter(event_type="auth.login.failed").exists()


def test_a_password_change_that_cannot_be_audited_is_rolled_back(olivia: AbstractUser) -> None:
    client = browser(raise_request_exception=False)
    client.force_login(olivia)
    tamper.edit_head(mac="0" * 64)
    assert change_password(client, PASSWORD).status_code == 503
    olivia.refresh_from_db()
    assert olivia.check_password(PASSWORD)


def test_logging_out_of_the_admin_is_audited(olivia: AbstractUser) -> None:
    client = browser()
    login_form(client, "olivia", PASSWORD)
    assert client.post("/admin/logout/").status_code == 200
    entry = AuditEntry.objects.get(event_type="auth.logout")
    assert (entry.actor_username, entry.actor_ip) == ("olivia", CLIENT)


@pytest.mark.server_errors_expected("the audit trail refuses on purpose; the failure is logged with its traceback")
def test_a_logout_the_audit_trail_refuses_still_ends_the_session(olivia: AbstractUser) -> None:
    client = browser()
    login_form(client, "olivia", PASSWORD)
    tamper.edit_head(mac="0" * 64)
    assert client.post("/admin/logout/").status_code == 200
    assert client.get("/admin/").status_code == 302
