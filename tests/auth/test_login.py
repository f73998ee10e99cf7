from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser
from rest_framework.test import APIClient

from audit.models import AuditEntry
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_it_starts_a_session_for_valid_credentials(anon: APIClient, alice: AbstractUser) -> None:
    response = anon.post("/api/auth/login", {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    assert response.json()["user"]["username"] == "alice"
    assert "sessionid" in response.cookies
    assert "csrftoken" in response.cookies
    me = anon.get("/api/users/me")
    assert me.status_code == 200
    assert me.json()["auth"]["method"] == "session"


def test_it_audits_a_successful_login_once(anon: APIClient, alice: AbstractUser) -> None:
    anon.post("/api/auth/login", {"username": "alice", "password": PASSWORD}, format="json", HTTP_USER_AGENT="ui/1")
    entry = AuditEntry.objects.get(event_type="auth.login.success")
    assert entry.actor_username == "alice"
    assert entry.actor_ip == "127.0.0.1"
    assert entry.target_id == str(alice.pk)
    assert entry.details == {"user_agent": "ui/1", "path": "/api/auth/login"}


def test_it_rejects_a_wrong_password_with_401_and_audits_it(anon: APIClient, alice: AbstractUser) -> None:
    body = {"username": "alice", "password": "nope"}
    response = anon.post("/api/auth/login", body, format="json", HTTP_USER_AGENT="curl/8.5")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid username or password."}
    assert "sessionid" not in response.cookies
    entry = AuditEntry.objects.get(event_type="auth.login.failed")
    assert (entry.actor_username, entry.actor_ip) == ("alice", "127.0.0.1")
    assert entry.details == {"user_agent": "curl/8.5", "path": "/api/auth/login"}


def test_it_rejects_an_unknown_user_like_a_wrong_password(anon: APIClient) -> None:
    response = anon.post("/api/auth/login", {"username": "mallory", "password": "x"}, format="json")
    assert response.status_code == 401
    assert AuditEntry.objects.filter(event_type="auth.login.failed", actor_username="mallory").exists()


def test_it_rejects_an_inactive_user(anon: APIClient, alice: AbstractUser) -> None:
    alice.is_active = False
    alice.save()
    response = anon.post("/api/auth/login", {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": PASSWORD}, "username"),
        ({"username": "alice"}, "password"),
        ({"username": ["alice"], "password": PASSWORD}, "username"),
        ({"username": "alice", "password": PASSWORD, "remember": True}, "remember"),
    ],
)
def test_it_names_the_bad_field(anon: APIClient, alice: AbstractUser, body: dict, field: str) -> None:
    response = anon.post("/api/auth/login", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert field in response.json()["detail"]


def test_it_rejects_malformed_json(anon: APIClient) -> None:
    response = anon.post("/api/auth/login", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_it_rejects_a_json_array_body(anon: APIClient) -> None:
    response = anon.post("/api/auth/login", [1, 2], format="json")
    assert response.status_code == 400
    assert "Expected a dictionary" in response.json()["detail"]


def test_it_rejects_form_encoded_bodies_with_415(anon: APIClient) -> None:
    response = anon.post(
        "/api/auth/login", "username=alice&password=x", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415


def test_it_rejects_get(anon: APIClient) -> None:
    assert anon.get("/api/auth/login").status_code == 405


def test_logout_ends_the_session(anon: APIClient, alice: AbstractUser) -> None:
    anon.post("/api/auth/login", {"username": "alice", "password": PASSWORD}, format="json")
    csrf = anon.cookies["csrftoken"].value
    response = anon.post("/api/auth/logout", HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 200
    assert response.json() == {"status": "logged_out"}
    assert anon.get("/api/users/me").status_code == 401
    assert AuditEntry.objects.filter(event_type="auth.logout", actor_username="alice").exists()


def test_logout_of_a_session_needs_the_csrf_token(alice: AbstractUser) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.post("/api/auth/login", {"username": "alice", "password": PASSWORD}, format="json")
    response = client.post("/api/auth/logout")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert client.get("/api/users/me").status_code == 200


def test_logout_without_a_session_is_harmless(anon: APIClient) -> None:
    response = anon.post("/api/auth/logout")
    assert response.status_code == 200
    assert not AuditEntry.objects.filter(event_type="auth.logout").exists()
