from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from audit.models import AuditVerification
from audit.services import audit_record
from tests.audit import tamper

pytestmark = pytest.mark.django_db

VERIFY = "/api/audit/verify"


def seed(n: int) -> None:
    for i in range(n):
        audit_record(event_type="job.submitted", target_type="job", target_id=str(i))


def test_staff_verify_the_whole_chain(staff_client: APIClient) -> None:
    seed(4)  # plus the api_key.created entry of the staff client's own key: 5 entries
    response = staff_client.get(VERIFY)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["ok"] is True
    assert body["reason"] is None and body["first_bad_sequence"] is None
    assert (body["from_sequence"], body["to_sequence"], body["checked"], body["full"]) == (1, 5, 5, True)
    assert body["head"]["last_sequence"] == 5 and len(body["head"]["mac"]) == 64
    run = AuditVerification.objects.get()
    assert (run.trigger, run.ok, run.checked, run.full) == ("api", True, 5, True)


def test_a_failure_names_the_reason_and_the_first_bad_sequence(staff_client: APIClient) -> None:
    seed(4)
    tamper.edit_entry(3, target_id="999")
    body = staff_client.get(VERIFY).json()
    assert body["status"] == "failed" and body["ok"] is False
    assert (body["reason"], body["first_bad_sequence"]) == ("edited", 3)
    assert "#3" in body["message"]
    run = AuditVerification.objects.get()
    assert (run.ok, run.reason, run.first_bad_sequence) == (False, "edited", 3)


def test_a_range_checks_only_its_entries(staff_client: APIClient) -> None:
    seed(9)
    tamper.edit_entry(8, target_id="999")
    inside = staff_client.get(VERIFY, {"from_sequence": 2, "to_sequence": 5}).json()
    assert inside["ok"] is True
    assert (inside["from_sequence"], inside["to_sequence"], inside["checked"], inside["full"]) == (2, 5, 4, False)
    assert staff_client.get(VERIFY, {"from_sequence": 6}).json()["reason"] == "edited"
    assert staff_client.get(VERIFY, {"to_sequence": 8}).json()["first_bad_sequence"] == 8


def test_a_range_before_the_tail_does_not_see_a_truncation_but_the_full_check_does(staff_client: APIClient) -> None:
    seed(5)
    tamper.delete_entries(6)
    assert staff_client.get(VERIFY, {"to_sequence": 4}).json()["ok"] is True
    body = staff_client.get(VERIFY).json()
    assert (body["reason"], body["first_bad_sequence"]) == ("truncated", 6)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"from_sequence": "abc"}, "from_sequence"),
        ({"from_sequence": 0}, "from_sequence"),
        ({"to_sequence": -1}, "to_sequence"),
        ({"from_sequence": 4, "to_sequence": 2}, "to_sequence"),
        ({"to_sequence": 99}, "to_sequence"),
        ({"from_sequence": 99}, "from_sequence"),
        ({"from": 1}, "from"),
    ],
)
def test_a_bad_range_is_400_naming_the_parameter(staff_client: APIClient, query: dict, parameter: str) -> None:
    seed(4)
    response = staff_client.get(VERIFY, query)
    assert response.status_code == 400
    body = response.json()
    assert parameter in body["errors"] and body["detail"].startswith(parameter)
    assert not AuditVerification.objects.exists()


def test_a_range_beyond_the_end_says_where_the_chain_ends(staff_client: APIClient) -> None:
    seed(2)
    body = staff_client.get(VERIFY, {"to_sequence": 50}).json()
    assert body["errors"]["to_sequence"] == ["Must be at most 3, the last entry."]


def test_an_empty_trail_verifies(staff_client: APIClient) -> None:
    body = staff_client.get(VERIFY).json()
    # The staff client's own key creation is the only entry.
    assert body["ok"] is True and body["checked"] == 1


def test_verify_needs_authentication(anon: APIClient) -> None:
    response = anon.get(VERIFY)
    assert response.status_code == 401
    assert "detail" in response.json()
    assert not AuditVerification.objects.exists()


def test_verify_is_staff_only(alice_client: APIClient) -> None:
    response = alice_client.get(VERIFY)
    assert response.status_code == 403
    assert response.json() == {"detail": "Staff status and the audit.view_auditentry permission are required."}
    assert not AuditVerification.objects.exists()


def test_verify_is_read_only(staff_client: APIClient) -> None:
    assert staff_client.post(VERIFY, {}, format="json").status_code == 405
    assert staff_client.delete(VERIFY).status_code == 405


def test_only_the_latest_results_are_kept(staff_client: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("audit.verification.KEEP_RESULTS", 3)
    for _ in range(5):
        staff_client.get(VERIFY)
    assert AuditVerification.objects.count() == 3


def test_the_api_reports_an_unreadable_key_as_503_without_details(
    staff_client: APIClient, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("SIMPLETUNER_AUDIT_KEY")
    key_file = tmp_path / "audit_key"
    key_file.write_text("readable by everyone\n")
    key_file.chmod(0o644)
    monkeypatch.setattr("django.conf.settings.AUDIT_KEY_FILE", key_file)
    response = staff_client.get(VERIFY)
    assert response.status_code == 503
    assert str(tmp_path) not in response.json()["detail"]


def test_the_openapi_schema_documents_verify_and_stats() -> None:
    from django.test import Client

    paths = Client().get("/api/schema/", headers={"Accept": "application/json"}).json()["paths"]
    assert {"/api/audit/verify", "/api/audit/stats"} <= set(paths)
    parameters = {p["name"] for p in paths["/api/audit/verify"]["get"]["parameters"]}
    assert {"from_sequence", "to_sequence"} <= parameters
