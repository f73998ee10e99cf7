"""The audit category reports the chain's standing from the recorded verifications:
`simpletuner_audit_chain_verified` and the time of the latest whole-chain verification."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEntry, AuditVerification
from audit.services import audit_record
from tests.audit import tamper
from tests.metrics.scrape import Scraper

pytestmark = pytest.mark.django_db

VERIFIED = ("simpletuner_audit_chain_verified", ())
VERIFIED_AT = ("simpletuner_audit_chain_full_verification_timestamp_seconds", ())


def seed(n: int) -> None:
    for i in range(n):
        audit_record(event_type="job.submitted", target_id=str(i))


def verify(*args: str) -> bool:
    """`manage.py audit_verify` as cron runs it; True when it exits 0."""
    try:
        call_command("audit_verify", *args)
    except CommandError:
        return False
    return True


def test_nothing_is_reported_before_the_first_verification(scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
    seed(2)
    enable("audit")
    values = scrape()
    assert VERIFIED not in values and VERIFIED_AT not in values
    assert ("simpletuner_audit_log_entries_total", ()) in values


def test_a_passing_verification_reports_verified_and_when(scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
    seed(3)
    enable("audit")
    assert verify()
    run = AuditVerification.objects.get()
    values = scrape()
    assert values[VERIFIED] == 1
    assert values[VERIFIED_AT] == pytest.approx(run.finished_at.timestamp())


def test_a_failed_verification_reports_not_verified(scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
    seed(3)
    enable("audit")
    assert verify()
    tamper.edit_entry(2, action="nothing to see")
    assert not verify()
    values = scrape()
    assert values[VERIFIED] == 0
    assert values[VERIFIED_AT] == pytest.approx(AuditVerification.objects.first().finished_at.timestamp())


def test_a_passing_range_check_does_not_clear_a_failed_full_one(scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
    seed(5)
    enable("audit")
    original = AuditEntry.objects.get(sequence=2).action
    tamper.edit_entry(2, action="nothing to see")
    assert not verify()
    assert verify("--from-sequence", "4", "--to-sequence", "5")
    assert scrape()[VERIFIED] == 0
    # Only a whole-chain verification that passes clears it.
    tamper.edit_entry(2, action=original)
    assert verify()
    assert scrape()[VERIFIED] == 1


def test_a_failed_range_check_after_a_passing_full_one_reports_not_verified(scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
    seed(5)
    enable("audit")
    assert verify()
    tamper.edit_entry(4, action="nothing to see")
    assert not verify("--from-sequence", "3", "--to-sequence", "5")
    values = scrape()
    assert values[VERIFIED] == 0
    # The timestamp stays the last whole-chain run's: a range check is not one.
    assert values[VERIFIED_AT] == pytest.approx(
        AuditVerification.objects.filter(full=True).get().finished_at.timestamp()
    )


def test_a_scrape_never_verifies_the_chain_itself(scrape: Scraper, enable) -> None:  # type: ignore[no-untyped-def]
    seed(3)
    enable("audit")
    assert verify()
    scrape()
    scrape()
    assert AuditVerification.objects.count() == 1
