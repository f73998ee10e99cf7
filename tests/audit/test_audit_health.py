"""The `audit` health component: the key's source, the head, the latest verification."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from audit.chain import AuditKeyMismatch, AuditKeyUnavailable, audit_key
from audit.services import audit_record
from audit.verification import audit_verify
from tests.audit import tamper

pytestmark = pytest.mark.django_db


def audit_component(client: APIClient) -> dict:
    body = client.get("/api/cloud/health").json()
    return next(c for c in body["components"] if c["name"] == "audit")


@pytest.fixture
def no_configured_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("SIMPLETUNER_AUDIT_KEY")
    key_file = tmp_path / "config" / "audit_key"
    key_file.parent.mkdir(mode=0o700)
    monkeypatch.setattr(settings, "AUDIT_KEY_FILE", key_file)
    return key_file


def test_a_configured_key_and_a_sound_head_are_healthy(anon: APIClient) -> None:
    audit_record(event_type="job.submitted")
    component = audit_component(anon)
    assert component["status"] == "healthy"
    assert component["message"] == "Audit chain head verifies"
    assert component["details"] == {"key_source": "environment", "last_verification": None}


def test_without_a_configured_key_one_is_generated_once_with_mode_0600_and_health_is_healthy(
    anon: APIClient, no_configured_key: Path
) -> None:
    # The generated key is the embedded default (as the SQLite file is): a fresh install is healthy.
    first = audit_key()
    assert stat.S_IMODE(no_configured_key.stat().st_mode) == 0o600
    assert audit_key().secret == first.secret and first.generated and first.source == "file"
    audit_record(event_type="job.submitted")
    component = audit_component(anon)
    assert (component["status"], component["message"]) == ("healthy", "Audit chain head verifies")
    assert component["details"]["key_source"] == "file"
    assert anon.get("/api/cloud/health").json()["status"] == "healthy"


def test_a_short_key_is_a_warning(anon: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMPLETUNER_AUDIT_KEY", "short")
    component = audit_component(anon)
    assert (component["status"], component["message"]) == (
        "degraded",
        "SIMPLETUNER_AUDIT_KEY is shorter than 32 characters",
    )


def test_a_tampered_head_is_unhealthy_and_only_staff_see_why(anon: APIClient, staff_client: APIClient) -> None:
    audit_record(event_type="job.submitted")
    tamper.edit_head(last_sequence=1)
    public = audit_component(anon)
    assert public["status"] == "unhealthy"
    assert public["message"] == "Audit chain head does not verify: audited actions are refused"
    assert "error" not in public
    assert anon.get("/api/cloud/health").status_code == 503
    assert "altered" in audit_component(staff_client)["error"]


def test_a_wrong_key_is_unhealthy(anon: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    audit_record(event_type="job.submitted")
    monkeypatch.setenv("SIMPLETUNER_AUDIT_KEY", "another key entirely, " + "y" * 32)
    assert audit_component(anon)["status"] == "unhealthy"


def test_a_truncated_tail_degrades_health_before_anyone_runs_a_verification(staff_client: APIClient) -> None:
    audit_record(event_type="job.submitted")
    audit_record(event_type="job.submitted")
    tamper.delete_entries(3)
    component = audit_component(staff_client)
    assert component["status"] == "degraded"
    assert "#3" in component["error"]


def test_a_failed_verification_degrades_health(staff_client: APIClient) -> None:
    audit_record(event_type="job.submitted")
    audit_record(event_type="job.submitted")
    tamper.edit_entry(2, event_type="job.cancelled")
    audit_verify(trigger="command")
    component = audit_component(staff_client)
    assert (component["status"], component["message"]) == ("degraded", "The last audit chain verification failed")
    assert component["error"].startswith("edited at #2")
    assert component["details"]["last_verification"]["ok"] is False


def test_a_key_file_readable_by_others_is_unhealthy(anon: APIClient, no_configured_key: Path) -> None:
    no_configured_key.write_text("group readable\n")
    no_configured_key.chmod(0o640)
    component = audit_component(anon)
    assert (component["status"], component["message"]) == (
        "unhealthy",
        "Audit key unavailable: audited actions are refused",
    )


def test_an_unreadable_key_file_is_unhealthy_and_staff_see_why(
    anon: APIClient, staff_client: APIClient, no_configured_key: Path
) -> None:
    # A directory where the key file should be: unreadable even for root (tests may run as root).
    no_configured_key.mkdir(mode=0o700)
    response = anon.get("/api/cloud/health")
    assert response.status_code == 503
    component = audit_component(anon)
    assert (component["status"], component["message"]) == (
        "unhealthy",
        "Audit key unavailable: audited actions are refused",
    )
    assert "error" not in component
    assert str(no_configured_key) in audit_component(staff_client)["error"]


@pytest.fixture
def secrets_file(tmp_path: Path, settings) -> Path:  # type: ignore[no-untyped-def]
    """A secrets file the chain reads; chmod it 0644 to make that store fail for real."""
    path = tmp_path / "secrets.json"
    path.write_text("{}")
    path.chmod(0o600)
    settings.SIMPLETUNER_SECRETS_FILE = path
    return path


def test_an_outage_of_an_unrelated_store_keeps_a_file_signed_chain_writable(
    no_configured_key: Path, secrets_file: Path
) -> None:
    audit_record(event_type="job.submitted")
    secrets_file.chmod(0o644)
    entry = audit_record(event_type="job.cancelled")
    assert entry.sequence == 2
    assert audit_verify().ok


def test_when_the_store_holding_the_key_fails_appends_are_refused_not_resigned(
    no_configured_key: Path, secrets_file: Path
) -> None:
    secrets_file.write_text('{"SIMPLETUNER_AUDIT_KEY": "' + "s" * 48 + '"}')
    audit_record(event_type="job.submitted")
    no_configured_key.write_text("a different generated key\n")
    no_configured_key.chmod(0o600)
    secrets_file.chmod(0o644)
    with pytest.raises(AuditKeyMismatch):
        audit_record(event_type="job.cancelled")


def test_no_key_file_is_created_while_a_store_is_failing(no_configured_key: Path, secrets_file: Path) -> None:
    secrets_file.chmod(0o644)
    with pytest.raises(AuditKeyUnavailable):
        audit_key()
    assert not no_configured_key.exists()
