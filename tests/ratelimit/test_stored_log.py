"""How the database backend stores a key's log: packed doubles, read back bit for bit, with
rows in the earlier JSON format still counted (a process upgraded mid-window must not hand
its clients a fresh budget)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudops.ratelimit.backends.database import DatabaseBackend, decode_hits, encode_hits
from cloudops.ratelimit.models import RateLimitBucket

times = st.lists(st.floats(min_value=0, max_value=4e9, allow_nan=False), max_size=300)


@given(times)
def test_a_log_reads_back_exactly_as_written(hits: list[float]) -> None:
    decoded = decode_hits(encode_hits(hits))
    assert [t.hex() for t in decoded] == [t.hex() for t in hits]


def test_the_packed_form_is_hex_text_and_the_default_is_an_empty_json_array() -> None:
    assert encode_hits([]) == "" and decode_hits("") == []
    assert encode_hits([1.0]) == "000000000000f03f"  # little-endian on every host
    assert decode_hits(RateLimitBucket._meta.get_field("hits").get_default()) == []


@pytest.mark.django_db
def test_a_row_in_the_json_format_still_counts() -> None:
    now = 1_700_000_000.0
    RateLimitBucket.objects.create(key="legacy", hits=json.dumps([now - 2, now - 1]), window=60, expires_at=now + 59)
    backend = DatabaseBackend("default", prune_every=10**9)
    decision = backend.hit("legacy", limit=3, window=60, now=now)
    assert decision.allowed and decision.count == 3
    assert not backend.hit("legacy", limit=3, window=60, now=now + 1).allowed
    stored = RateLimitBucket.objects.get(key="legacy").hits
    assert decode_hits(stored) == [now - 2, now - 1, now] and not stored.startswith("[")
