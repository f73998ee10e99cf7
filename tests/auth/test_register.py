from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.test import override_settings
from rest_framework.test import APIClient

from audit.models import AuditEntry

pytestmark = pytest.mark.django_db

GOOD = {"username": "carol", "password": "a sufficiently long passphrase", "email": "carol@example.com"}


def test_it_refuses_registration_by_default_and_says_how_to_enable_it(anon: APIClient) -> None:
    response = anon.post("/api/auth/register", GOOD, format="json")
    assert response.status_code == 403
    assert "SIMPLETUNER_ALLOW_REGISTRATION=true" in response.json()["detail"]
    assert not get_user_model().objects.filter(username="carol").exists()


@override_settings(SIMPLETUNER_ALLOW_REGISTRATION=True)
def test_it_creates_a_normal_user_when_enabled(anon: APIClient) -> None:
    response = anon.post("/api/auth/register", GOOD, format="json")
    assert response.status_code == 201
    assert response.json()["user"]["username"] == "carol"
    user = get_user_model().objects.get(username="carol")
    assert not user.is_staff and not user.is_superuser
    assert user.check_password(GOOD["password"])
    assert AuditEntry.objects.filter(event_type="auth.registered", target_id=str(user.pk)).exists()


@override_settings(SIMPLETUNER_ALLOW_REGISTRATION=True)
def test_it_rejects_a_taken_username(anon: APIClient, alice: AbstractUser) -> None:
    response = anon.post("/api/auth/register", {**GOOD, "username": "alice"}, format="json")
    assert response.status_code == 400
    assert "username" in response.json()["errors"]


@override_settings(SIMPLETUNER_ALLOW_REGISTRATION=True)
def test_it_rejects_a_weak_password_with_the_validator_message(anon: APIClient) -> None:
    response = anon.post("/api/auth/register", {**GOOD, "password": "123"}, format="json")
    assert response.status_code == 400
    assert "password" in response.json()["errors"]
    assert "too short" in response.json()["detail"]


@override_settings(SIMPLETUNER_ALLOW_REGISTRATION=True)
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "a sufficiently long passphrase"}, "username"),
        ({"username": "carol"}, "password"),
        ({**GOOD, "username": "bad name!"}, "username"),
        ({**GOOD, "email": "not-an-email"}, "email"),
        ({**GOOD, "is_staff": True}, "is_staff"),
    ],
)
def test_it_names_the_bad_field(anon: APIClient, body: dict, field: str) -> None:
    response = anon.post("/api/auth/register", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not get_user_model().objects.filter(username="carol").exists()


@override_settings(SIMPLETUNER_ALLOW_REGISTRATION=True)
def test_it_rejects_malformed_json(anon: APIClient) -> None:
    response = anon.post("/api/auth/register", "{", content_type="application/json")
    assert response.status_code == 400
