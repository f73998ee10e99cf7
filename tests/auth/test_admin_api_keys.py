from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from rest_framework.test import APIClient

from audit.models import AuditEntry
from cloudops.models import ApiKey

pytestmark = pytest.mark.django_db


def test_creating_a_key_in_the_admin_shows_it_once_and_it_works(olivia: AbstractUser, alice: AbstractUser) -> None:
    client = Client()
    client.force_login(olivia)
    response = client.post("/admin/cloudops/apikey/add/", {"owner": alice.pk, "name": "from-admin"}, follow=True)
    assert response.status_code == 200
    match = re.search(r"shown only once, store it now\): (sk_\S+?)<", response.content.decode())
    assert match, "the new key is not shown"
    raw_key = match.group(1)
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=raw_key)
    assert api.get("/api/users/me").json()["user"]["username"] == "alice"
    key = ApiKey.objects.get(name="from-admin")
    assert AuditEntry.objects.filter(
        event_type="api_key.created", target_id=key.prefix, actor_username="olivia"
    ).exists()
    detail = client.get(f"/admin/cloudops/apikey/{key.pk}/change/").content.decode()
    assert raw_key not in detail


def test_the_admin_revokes_keys_with_an_action(olivia: AbstractUser, alice: AbstractUser) -> None:
    client = Client()
    client.force_login(olivia)
    client.post("/admin/cloudops/apikey/add/", {"owner": alice.pk, "name": "k"})
    key = ApiKey.objects.get(name="k")
    action = {"action": "revoke_selected", "_selected_action": [key.pk]}
    question = client.post("/admin/cloudops/apikey/", action).content.decode()
    assert "Revoke these 1 API key(s)?" in question and key.prefix in question
    key.refresh_from_db()
    assert key.revoked_at is None, "asking revokes nothing"
    response = client.post("/admin/cloudops/apikey/", {**action, "post": "yes"}, follow=True)
    assert "1 API key(s) are now revoked." in [str(m) for m in response.context["messages"]]
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert AuditEntry.objects.filter(event_type="api_key.revoked", target_id=key.prefix).exists()


def test_normal_users_cannot_reach_the_admin(alice: AbstractUser) -> None:
    client = Client()
    client.force_login(alice)
    assert client.get("/admin/cloudops/apikey/").status_code == 302
