"""The one JSON input boundary (cloudops/jsonbody.py): limits, named fields, nothing stored."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from cloudops.jsonbody import MAX_DEPTH, InvalidJSON, parse_json, storable_text
from providers.models import Job
from tests.providers.helpers import QUICK


def post_raw(client: APIClient, path: str, body: str | bytes) -> object:
    return client.generic("POST", path, body, content_type="application/json")


# --- The parser ---------------------------------------------------------------------------------


def test_it_accepts_ordinary_json() -> None:
    assert parse_json(b'{"a": [1, 2.5, "x", null, true], "b": {"c": -9223372036854775808}}') == {
        "a": [1, 2.5, "x", None, True],
        "b": {"c": -(2**63)},
    }


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ('{"config": {"\\ud800": 1}}', "config (a key): text must not contain lone surrogates"),
        ('{"config": {"x": "\\udfff"}}', "config.x: text must not contain lone surrogates"),
        ('{"dataloader_config": [{"id": "a\\u0000b"}]}', "dataloader_config[0].id: text must not contain NUL"),
        ('{"config": {"x": 1e999}}', "config.x: numbers must be finite"),
        ('{"config": {"x": -1e999}}', "config.x: numbers must be finite"),
        ('{"n": NaN}', "NaN is not a JSON number"),
        ('{"n": Infinity}', "Infinity is not a JSON number"),
        ('{"n": 9223372036854775808}', "n: integers must be between -2^63 and 2^63-1"),
        ('{"n": -9223372036854775809}', "n: integers must be between -2^63 and 2^63-1"),
        ('{"n": ' + "9" * 4000 + "}", "n: integers must be between"),
        ('{"n": ' + "9" * 5000 + "}", "n: integers must be between"),
        ('{"weird key": {"x": 1e400}}', '"weird key".x: numbers must be finite'),
    ],
)
def test_it_refuses_what_cannot_be_stored_and_names_the_field(body: str, named: str) -> None:
    with pytest.raises(InvalidJSON) as refused:
        parse_json(body.encode())
    assert named in str(refused.value)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 50_000])
def test_it_refuses_deep_nesting_without_recursing(depth: int) -> None:
    with pytest.raises(InvalidJSON, match=f"nested more than {MAX_DEPTH} levels deep"):
        parse_json(("[" * depth + "]" * depth).encode())
    with pytest.raises(InvalidJSON, match="nested more than"):
        parse_json(('{"a":' * depth + "1" + "}" * depth).encode())


def test_it_accepts_nesting_up_to_the_limit() -> None:
    assert parse_json(("[" * MAX_DEPTH + "]" * MAX_DEPTH).encode()) is not None


def test_it_refuses_bytes_that_are_not_utf8() -> None:
    with pytest.raises(InvalidJSON, match="not UTF-8"):
        parse_json(b'{"a": "\xed\xa0\x80"}')  # a surrogate encoded as bytes (CESU-8)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_refused_with_invalid_json_or_parsed_as_python_would(data: bytes) -> None:
    try:
        parsed = parse_json(data)
    except InvalidJSON as refused:
        assert str(refused)  # every refusal says why
    else:
        assert parsed == json.loads(data.decode("utf-8"))


_json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def _storable(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**63
    if isinstance(value, str):
        return "\x00" not in value and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    return True


@settings(max_examples=300, derandomize=True, deadline=None)
@given(_json_values)
def test_a_value_is_accepted_exactly_when_every_part_of_it_can_be_stored(value: object) -> None:
    text = json.dumps(value, allow_nan=True)  # surrogates stay \\u escapes, NaN/Infinity literal
    try:
        parsed = parse_json(text)
    except InvalidJSON:
        assert not _storable(value)
    else:
        assert _storable(value)
        assert json.dumps(parsed) == json.dumps(value)


def test_storable_text_replaces_what_databases_refuse() -> None:
    assert storable_text("a\x00b\ud800c") == "a\ufffdb\ufffdc"
    assert storable_text("plain") == "plain"


# --- Through the API ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        '{"provider": "local", "config": {"\\ud800": 1}}',
        '{"provider": "local", "config": {"x": "\\ud800"}}',
        '{"provider": "local", "config": {}, "dataloader_config": [{"\\udbff": 1}]}',
        '{"provider": "local", "config": {"x": 1e999}}',
        '{"provider": "local", "config": {"x": "a\\u0000b"}}',
    ],
)
def test_a_job_that_could_not_be_shown_again_is_refused_and_nothing_is_stored(
    alice_client: APIClient, body: str
) -> None:
    response = post_raw(alice_client, "/api/cloud/jobs/submit", body)
    assert response.status_code == 400, response.content
    assert "JSON parse error" in response.json()["detail"]
    assert Job.objects.count() == 0
    # The job list is unharmed for everyone.
    assert alice_client.get("/api/cloud/jobs").status_code == 200


@pytest.mark.django_db
def test_the_refusal_names_the_bad_field(alice_client: APIClient) -> None:
    response = post_raw(alice_client, "/api/cloud/jobs/submit", '{"provider": "local", "config": {"lr": 1e999}}')
    assert response.status_code == 400
    assert "config.lr: numbers must be finite" in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/auth/login", "/api/auth/register", "/api/cloud/jobs/submit"])
def test_deeply_nested_json_is_a_400_on_every_json_endpoint(
    anon: APIClient, alice_client: APIClient, path: str
) -> None:
    client = anon if path.startswith("/api/auth/") else alice_client
    response = post_raw(client, path, "[" * 50_000 + "]" * 50_000)
    assert response.status_code == 400, response.content
    assert "nested more than" in response.json()["detail"]


@pytest.mark.django_db
def test_a_body_in_another_charset_is_refused(alice_client: APIClient) -> None:
    body = json.dumps({"provider": "local", "config": QUICK}).encode("utf-16")
    response = alice_client.generic(
        "POST", "/api/cloud/jobs/submit", body, content_type="application/json; charset=utf-16"
    )
    assert response.status_code == 400
    assert "UTF-8" in response.json()["detail"]
