"""The canonical encoding is a fixed point of every database's round trip, so MACs verify."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest

from audit.chain import canonical_timestamp, normalise_details, normalise_text
from audit.models import AuditEntry
from audit.services import audit_record
from audit.verification import audit_verify
from cloudops.auditing import Actor

TRICKY_DETAILS = {
    "integral_float": 3.0,
    "huge_float": 1e20,
    "enormous_float": 1.5e300,
    "tiny_float": 1.5e-300,
    "inexact": 0.1 + 0.2,
    "negative_zero": -0.0,
    "big_int": 2**64 + 1,
    "nan": float("nan"),
    "unicode": "naïve 東京 🚀",
    "nul": "a\x00b",
    "nested": {"z": [1, 2.5, None, True], "a": {"b": "c"}},
    "tuple": (1, "two"),
    7: "integer key",
    "decimal": decimal.Decimal("12.50"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "when": dt.datetime(2024, 1, 15, 10, 30, tzinfo=dt.UTC),
    "day": dt.date(2024, 1, 15),
}


@pytest.mark.django_db
def test_tricky_details_survive_the_database_round_trip_and_still_verify() -> None:
    entry = audit_record(event_type="test.tricky", details=TRICKY_DETAILS)
    audit_record(event_type="test.after")
    stored = AuditEntry.objects.get(pk=entry.pk).details
    assert stored == entry.details
    assert stored["integral_float"] == 3 and isinstance(stored["integral_float"], int)
    assert stored["huge_float"] == "100000000000000000000" and stored["big_int"] == str(2**64 + 1)
    assert stored["inexact"] == 0.1 + 0.2 and stored["tiny_float"] == 1.5e-300
    assert stored["nul"] == "a\ufffdb" and stored["7"] == "integer key" and stored["decimal"] == "12.50"
    assert audit_verify().ok


@pytest.mark.django_db
def test_text_fields_are_stored_exactly_as_maced_even_when_too_long_or_holding_nul() -> None:
    entry = audit_record(
        event_type="rate_limited",
        actor=Actor(username="u" * 200, ip="203.0.113.9"),
        target_type="path",
        target_id="/api/\x00" + "x" * 300,
        action="a" * 100,
        details={"user_agent": "curl/8\x00evil"},
    )
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert len(stored.actor_username) == 150 and len(stored.target_id) == 128 and len(stored.action) == 64
    assert stored.target_id.startswith("/api/\ufffd")
    assert audit_verify().ok


def test_normalisation_is_idempotent() -> None:
    once = normalise_details(TRICKY_DETAILS)
    assert normalise_details(once) == once


def test_unsupported_detail_types_are_refused_as_json_would() -> None:
    with pytest.raises(TypeError, match="object"):
        normalise_details({"x": object()})


def test_lone_surrogates_become_valid_utf8() -> None:
    assert normalise_text("bad \udc80 byte").encode("utf-8")


def test_timestamps_are_utc_with_six_digits_of_microseconds() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert canonical_timestamp(dt.datetime(2024, 1, 15, 12, 30, tzinfo=plus_two)) == "2024-01-15T10:30:00.000000Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        canonical_timestamp(dt.datetime(2024, 1, 15))
