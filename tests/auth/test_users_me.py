from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_it_describes_the_caller(alice_client: APIClient) -> None:
    body = alice_client.get("/api/users/me").json()
    assert body["user"]["username"] == "alice"
    assert body["user"]["is_staff"] is False
    assert "password" not in body["user"]


def test_it_shows_staff_flags(staff_client: APIClient) -> None:
    assert staff_client.get("/api/users/me").json()["user"]["is_staff"] is True


def test_it_needs_authentication(anon: APIClient) -> None:
    response = anon.get("/api/users/me")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_it_only_reads(alice_client: APIClient) -> None:
    assert alice_client.post("/api/users/me", {}, format="json").status_code == 405
