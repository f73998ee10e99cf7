"""Webhook payload parsing, for any JSON object within the input limits: it never raises, names
a status only from our vocabulary, and keeps only numbers every database stores."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudops.jsonbody import InvalidJSON, parse_json
from providers.models import JobStatus
from providers.webhooks.payloads import TRAINER_STATUS, parse_payload

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
# Objects shaped like what arrives, with the fields the parser reads given any value.
_trainer_event = st.fixed_dictionaries(
    {"type": st.sampled_from(["training.status", "lifecycle.stage", "training.progress", "training.checkpoint", "x"])},
    optional={
        "job_id": _values,
        "data": st.dictionaries(
            st.sampled_from(["status", "progress", "step", "total", "job_id", "checkpoint", "error"]), _values
        )
        | _values,
        "stage": st.dictionaries(st.sampled_from(["status", "progress", "key"]), _values) | _values,
        "progress": _values,
        "checkpoint": _values,
        "status": _values,
        "message": _values,
    },
)
_prediction = st.fixed_dictionaries(
    {},
    optional={
        "id": _values,
        "status": st.sampled_from(["starting", "processing", "succeeded", "failed", "canceled"]) | _values,
        "metrics": st.dictionaries(st.just("predict_time"), _values) | _values,
        "output": _values,
        "error": _values,
        "logs": _values,
        "started_at": _values,
        "completed_at": _values,
    },
)


def _storable_numbers(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_storable_numbers(v) for v in value.values())
    return True


@pytest.mark.slow
@settings(max_examples=400, derandomize=True, deadline=None)
@given(st.one_of(_trainer_event, _prediction))
def test_any_object_is_parsed_into_our_vocabulary_without_raising(event: dict[str, Any]) -> None:
    try:
        # As the endpoint does: through the input boundary first (NaN, 1e999, ... never arrive).
        body = parse_json(json.dumps(event, allow_nan=True).encode())
    except InvalidJSON:
        return
    payload = parse_payload(body)
    assert payload.remote.status is None or payload.remote.status in set(JobStatus)
    assert isinstance(payload.job_id, str) and isinstance(payload.external_id, str)
    assert _storable_numbers(payload.remote.progress)
    json.dumps(payload.remote.progress, allow_nan=False)  # what a JSON column will store
    run_seconds = payload.remote.run_seconds
    assert run_seconds is None or (math.isfinite(run_seconds) and run_seconds >= 0)


@settings(max_examples=100, derandomize=True, deadline=None)
@given(st.sampled_from(sorted(TRAINER_STATUS)), st.booleans())
def test_every_trainer_status_word_maps_whatever_its_case(word: str, upper: bool) -> None:
    event = {"type": "training.status", "job_id": "job-x", "data": {"status": word.upper() if upper else word}}
    assert parse_payload(event).remote.status == TRAINER_STATUS[word]
