"""Every attack on the stored trail is detected, named, and located at its first bad entry."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from audit.chain import AuditChainError, AuditKey, AuditKeyMismatch, HeadState, entry_mac
from audit.models import AuditEntry
from audit.selectors import head_state
from audit.services import audit_record
from audit.verification import audit_verify
from cloudops.auditing import Actor
from cloudops.models import ApiKey
from tests.audit import tamper
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

MALLORY_KEY = AuditKey(secret=b"mallory does not have the real key", source="guess")


def seed(n: int = 6) -> list[AuditEntry]:
    return [
        audit_record(
            event_type="api_key.created",
            actor=Actor(username="alice", api_key="sk_alice123", ip="10.0.0.1"),
            target_type="api_key",
            target_id=f"sk_{i}",
            action="create",
            details={"name": f"key {i}", "owner": "alice"},
        )
        for i in range(1, n + 1)
    ]


def test_an_untouched_chain_verifies() -> None:
    seed()
    result = audit_verify()
    assert result.ok and result.reason is None and result.first_bad_sequence is None
    assert (result.from_sequence, result.to_sequence, result.checked, result.full) == (1, 6, 6, True)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_type", "api_key.revoked"),
        ("actor_username", "mallory"),
        ("actor_api_key", "sk_mallory1"),
        ("actor_ip", "198.51.100.66"),
        ("target_type", "user"),
        ("target_id", "sk_999"),
        ("action", "erase"),
        ("details", {"name": "key 3", "owner": "mallory"}),
        ("details", {}),
        ("mac", "0" * 64),
        ("mac", "é" * 64),
    ],
)
def test_an_edited_field_is_detected_at_that_entry(field: str, value: object) -> None:
    seed()
    tamper.edit_entry(3, **{field: value})
    result = audit_verify()
    assert not result.ok
    assert (result.reason, result.first_bad_sequence) == ("edited", 3)
    assert "#3" in result.message


def test_an_edited_timestamp_is_detected_even_by_one_microsecond() -> None:
    entries = seed()
    tamper.edit_entry(4, timestamp=entries[3].timestamp + timedelta(microseconds=1))
    result = audit_verify()
    assert (result.ok, result.reason, result.first_bad_sequence) == (False, "edited", 4)


def test_rewriting_details_with_the_same_content_in_another_key_order_still_verifies() -> None:
    seed()
    tamper.edit_entry(2, details={"owner": "alice", "name": "key 2"})
    assert audit_verify().ok


def test_a_deleted_entry_in_the_middle_is_reported_missing() -> None:
    seed()
    tamper.delete_entries(3)
    result = audit_verify()
    assert (result.ok, result.reason, result.first_bad_sequence) == (False, "missing", 3)


def test_several_deleted_entries_report_the_first() -> None:
    seed()
    tamper.delete_entries(2, 3, 5)
    result = audit_verify()
    assert (result.reason, result.first_bad_sequence) == ("missing", 2)


@pytest.mark.parametrize(("a", "b"), [(2, 5), (3, 4), (1, 6)])
def test_swapped_sequences_are_reported_as_reordered(a: int, b: int) -> None:
    seed()
    tamper.swap_sequences(a, b)
    result = audit_verify()
    assert (result.ok, result.reason, result.first_bad_sequence) == (False, "reordered", a)
    assert f"#{b}" in result.message


@pytest.mark.parametrize("removed", [1, 3])
def test_a_truncated_tail_is_detected_through_the_head_checkpoint(removed: int) -> None:
    seed()
    tamper.delete_entries(*range(7 - removed, 7))
    result = audit_verify()
    assert (result.ok, result.reason, result.first_bad_sequence) == (False, "truncated", 7 - removed)


def test_an_entry_appended_without_the_key_is_reported_forged() -> None:
    entries = seed()
    fields = {
        "sequence": 7,
        "timestamp": entries[-1].timestamp + timedelta(seconds=1),
        "event_type": "auth.login.success",
        "actor_username": "mallory",
        "actor_api_key": "",
        "actor_ip": "198.51.100.66",
        "target_type": "",
        "target_id": "",
        "action": "",
        "details": {},
    }
    AuditEntry.objects.create(**fields, mac=entry_mac(MALLORY_KEY, fields, entries[-1].mac))
    result = audit_verify()
    assert (result.ok, result.reason, result.first_bad_sequence) == (False, "forged", 7)


def test_a_forged_entry_with_a_rewritten_head_breaks_the_head() -> None:
    entries = seed()
    fields = {**_fields_of(entries[-1]), "sequence": 7, "actor_username": "mallory"}
    forged = entry_mac(MALLORY_KEY, fields, entries[-1].mac)
    AuditEntry.objects.create(**fields, mac=forged)
    tamper.edit_head(last_sequence=7, last_mac=forged)
    result = audit_verify()
    assert (result.ok, result.reason) == (False, "bad_head")


def test_a_deleted_entry_replaced_by_a_forgery_is_reported_edited() -> None:
    entries = seed()
    fields = {**_fields_of(entries[2]), "actor_username": "mallory"}
    tamper.delete_entries(3)
    AuditEntry.objects.create(**fields, mac=entry_mac(MALLORY_KEY, fields, entries[1].mac))
    result = audit_verify()
    assert (result.reason, result.first_bad_sequence) == ("edited", 3)


def test_a_chain_rewritten_and_resigned_with_another_key_is_reported_as_the_wrong_key() -> None:
    seed()
    forged = HeadState(**{**head_state().as_dict(), "key_id": MALLORY_KEY.key_id, "mac": ""})
    tamper.edit_head(key_id=forged.key_id, mac=forged.expected_mac(MALLORY_KEY))
    result = audit_verify()
    assert (result.ok, result.reason, result.first_bad_sequence) == (False, "wrong_key", None)


def test_verifying_with_the_wrong_key_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    seed()
    monkeypatch.setenv("SIMPLETUNER_AUDIT_KEY", "a different key, " + "x" * 32)
    result = audit_verify()
    assert (result.ok, result.reason) == (False, "wrong_key")
    assert "SIMPLETUNER_AUDIT_KEY" in result.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("last_sequence", 5),
        ("last_mac", "f" * 64),
        ("anchor_sequence", 3),
        ("anchor_mac", "a" * 64),
        ("pruned_through", 2),
        ("mac", "0" * 64),
        ("mac", ""),
    ],
)
def test_a_tampered_head_checkpoint_is_detected(field: str, value: object) -> None:
    seed()
    tamper.edit_head(**{field: value})
    result = audit_verify()
    assert (result.ok, result.reason, result.first_bad_sequence) == (False, "bad_head", None)


def test_a_deleted_head_checkpoint_is_detected() -> None:
    seed()
    tamper.delete_head()
    result = audit_verify()
    assert (result.ok, result.reason) == (False, "bad_head")
    assert "missing" in result.message


def test_appends_are_refused_over_a_tampered_head_so_it_is_never_resigned() -> None:
    seed()
    tamper.delete_entries(5, 6)
    tamper.edit_head(last_sequence=4, last_mac=AuditEntry.objects.get(sequence=4).mac)
    with pytest.raises(AuditChainError):
        audit_record(event_type="job.submitted")
    assert AuditEntry.objects.count() == 4
    assert audit_verify().reason == "bad_head"


def test_appends_are_refused_with_another_key(monkeypatch: pytest.MonkeyPatch) -> None:
    seed(2)
    monkeypatch.setenv("SIMPLETUNER_AUDIT_KEY", "a different key, " + "x" * 32)
    with pytest.raises(AuditKeyMismatch, match="audit_reanchor"):
        audit_record(event_type="job.submitted")
    assert AuditEntry.objects.count() == 2


def test_an_api_action_that_cannot_be_audited_is_refused_with_503(staff_client: APIClient) -> None:
    tamper.edit_head(mac="0" * 64)
    response = staff_client.post("/api/auth/api-keys", {"name": "ci"}, format="json")
    assert response.status_code == 503
    assert "audit trail cannot be written" in response.json()["detail"]
    assert not AuditEntry.objects.filter(event_type="api_key.created", details__name="ci").exists()
    # The action and its audit entry are one transaction: no unaudited key exists.
    assert not ApiKey.objects.filter(name="ci").exists()


def test_a_login_that_cannot_be_audited_starts_no_session(anon: APIClient, alice) -> None:  # type: ignore[no-untyped-def]
    seed(1)
    tamper.edit_head(mac="0" * 64)
    response = anon.post("/api/auth/login", {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 503
    assert "sessionid" not in response.cookies
    assert anon.get("/api/users/me").status_code == 401


def test_entries_after_a_tampered_one_are_still_chained_to_it() -> None:
    # The MAC column of #3 rewritten to match edited content under a guessed key: #3 fails
    # first, and even if it were trusted, #4 is chained to the original MAC of #3.
    entries = seed()
    fields = {**_fields_of(entries[2]), "actor_username": "mallory"}
    tamper.edit_entry(3, actor_username="mallory", mac=entry_mac(MALLORY_KEY, fields, entries[1].mac))
    assert (audit_verify().reason, audit_verify().first_bad_sequence) == ("edited", 3)
    assert audit_verify(from_sequence=4).reason == "edited"


def _fields_of(entry: AuditEntry) -> dict[str, object]:
    names = ("sequence", "timestamp", "event_type", "actor_username", "actor_api_key", "actor_ip")
    rest = ("target_type", "target_id", "action", "details")
    return {name: getattr(entry, name) for name in names + rest}


def test_the_mac_is_an_hmac_sha256_of_the_documented_canonical_encoding() -> None:
    from tests.audit.conftest import TEST_KEY

    entry = seed(1)[0]
    stamp = entry.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    message = (
        '{"action":"create","actor_api_key":"sk_alice123","actor_ip":"10.0.0.1","actor_username":"alice",'
        '"details":{"name":"key 1","owner":"alice"},"event_type":"api_key.created","kind":"audit-entry",'
        f'"prev_mac":"","sequence":1,"target_id":"sk_1","target_type":"api_key","timestamp":"{stamp}","v":1}}'
    )
    assert entry.mac == hmac.new(TEST_KEY.encode(), message.encode(), hashlib.sha256).hexdigest()


def test_a_head_reset_to_blank_is_detected_and_appends_are_refused() -> None:
    seed()
    tamper.edit_head(last_sequence=0, last_mac="", anchor_sequence=0, anchor_mac="", key_id="", mac="")
    result = audit_verify()
    assert (result.ok, result.reason) == (False, "bad_head")
    assert "reset" in result.message
    with pytest.raises(AuditChainError, match="reset"):
        audit_record(event_type="job.submitted")
    assert AuditEntry.objects.count() == 6
