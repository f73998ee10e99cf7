from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser
from rest_framework.test import APIClient

from audit.models import AuditEntry
from cloudops.apikeys import api_key_create, api_key_secret
from cloudops.models import ApiKey
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_it_shows_a_new_key_once_and_stores_only_its_hash(alice_client: APIClient) -> None:
    response = alice_client.post("/api/auth/api-keys", {"name": "laptop"}, format="json")
    assert response.status_code == 201
    body = response.json()
    raw_key = body["key"]
    assert raw_key.startswith(body["api_key"]["prefix"] + "_")
    row = ApiKey.objects.get(prefix=body["api_key"]["prefix"])
    assert raw_key not in {row.key_hash, row.salt, row.prefix}
    listing = alice_client.get("/api/auth/api-keys").json()
    assert raw_key not in str(listing)
    assert {k["name"] for k in listing["api_keys"]} == {"test", "laptop"}
    assert listing["total"] == 2


def test_a_new_key_authenticates_with_bearer_and_x_api_key(alice_client: APIClient) -> None:
    raw_key = alice_client.post("/api/auth/api-keys", {"name": "ci"}, format="json").json()["key"]
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert bearer.get("/api/users/me").json()["user"]["username"] == "alice"
    header = APIClient()
    header.credentials(HTTP_X_API_KEY=raw_key)
    me = header.get("/api/users/me").json()
    assert me["auth"] == {"method": "api_key", "api_key": raw_key[:11]}


def test_the_server_can_recompute_a_key_for_s3_signatures(alice: AbstractUser) -> None:
    api_key, raw_key = api_key_create(owner=alice, name="s3")
    assert api_key_secret(ApiKey.objects.get(pk=api_key.pk)) == raw_key


def test_creation_is_audited(alice_client: APIClient) -> None:
    prefix = alice_client.post("/api/auth/api-keys", {"name": "audited"}, format="json").json()["api_key"]["prefix"]
    entry = AuditEntry.objects.get(event_type="api_key.created", target_id=prefix)
    assert entry.actor_username == "alice"
    assert entry.details == {"name": "audited", "owner": "alice"}


def test_it_records_when_a_key_was_last_used(alice_client: APIClient) -> None:
    alice_client.get("/api/users/me")
    assert ApiKey.objects.get(name="test").last_used_at is not None


def test_a_revoked_key_stops_working_at_once(alice_client: APIClient) -> None:
    created = alice_client.post("/api/auth/api-keys", {"name": "temp"}, format="json").json()
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {created['key']}")
    assert other.get("/api/users/me").status_code == 200
    response = alice_client.delete(f"/api/auth/api-keys/{created['api_key']['id']}")
    assert response.status_code == 200
    assert response.json()["api_key"]["revoked_at"] is not None
    denied = other.get("/api/users/me")
    assert denied.status_code == 401
    assert denied.json() == {"detail": "Invalid or revoked API key."}
    assert AuditEntry.objects.filter(event_type="api_key.revoked", target_id=created["api_key"]["prefix"]).count() == 1


def test_revoking_twice_is_idempotent_and_audited_once(alice_client: APIClient) -> None:
    key_id = alice_client.post("/api/auth/api-keys", {"name": "x"}, format="json").json()["api_key"]["id"]
    assert alice_client.delete(f"/api/auth/api-keys/{key_id}").status_code == 200
    assert alice_client.delete(f"/api/auth/api-keys/{key_id}").status_code == 200
    assert AuditEntry.objects.filter(event_type="api_key.revoked").count() == 1


def test_a_user_cannot_revoke_someone_elses_key(alice_client: APIClient, bob: AbstractUser) -> None:
    bobs_key, _ = api_key_create(owner=bob, name="bob's")
    response = alice_client.delete(f"/api/auth/api-keys/{bobs_key.pk}")
    assert response.status_code == 404
    assert ApiKey.objects.get(pk=bobs_key.pk).revoked_at is None


def test_staff_can_revoke_any_key(staff_client: APIClient, bob: AbstractUser) -> None:
    bobs_key, _ = api_key_create(owner=bob, name="bob's")
    assert staff_client.delete(f"/api/auth/api-keys/{bobs_key.pk}").status_code == 200
    assert ApiKey.objects.get(pk=bobs_key.pk).revoked_at is not None


def test_a_user_lists_only_their_own_keys(alice_client: APIClient, bob: AbstractUser) -> None:
    api_key_create(owner=bob, name="bob's")
    names = [k["name"] for k in alice_client.get("/api/auth/api-keys").json()["api_keys"]]
    assert names == ["test"]


def test_unknown_key_id_is_404(alice_client: APIClient) -> None:
    assert alice_client.delete("/api/auth/api-keys/999999").status_code == 404
    assert alice_client.delete("/api/auth/api-keys/abc").status_code == 404


@pytest.mark.parametrize("method", ["get", "post"])
def test_it_needs_authentication(anon: APIClient, method: str) -> None:
    response = getattr(anon, method)("/api/auth/api-keys", {"name": "x"}, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert anon.delete("/api/auth/api-keys/1").status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        {"HTTP_AUTHORIZATION": "Bearer sk_nothere_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
        {"HTTP_AUTHORIZATION": "Bearer garbage"},
        {"HTTP_X_API_KEY": "sk_"},
    ],
)
def test_it_rejects_an_invalid_key_with_401(db: None, header: dict) -> None:
    client = APIClient()
    client.credentials(**header)
    response = client.get("/api/users/me")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or revoked API key."}


def test_a_key_with_a_tampered_secret_is_rejected(alice_client: APIClient) -> None:
    raw_key = alice_client.raw_key  # type: ignore[attr-defined]
    tampered = raw_key[:-1] + ("A" if raw_key[-1] != "A" else "B")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tampered}")
    assert client.get("/api/users/me").status_code == 401


def test_a_deactivated_users_keys_stop_working(alice: AbstractUser) -> None:
    client = client_for(alice)
    alice.is_active = False
    alice.save()
    assert client.get("/api/users/me").status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "name"), ({"name": ""}, "name"), ({"name": "x" * 101}, "name"), ({"name": "ok", "owner": 1}, "owner")],
)
def test_it_names_the_bad_field(alice_client: APIClient, body: dict, field: str) -> None:
    response = alice_client.post("/api/auth/api-keys", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_it_rejects_malformed_json(alice_client: APIClient) -> None:
    assert alice_client.post("/api/auth/api-keys", "{", content_type="application/json").status_code == 400
