"""Job-config keys that name a credential are found however they are spelled."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from providers.config_secrets import CREDENTIAL_SPELLINGS, credential_keys, names_credential, readable_form
from providers.models import Job

CYRILLIC_O = "\u043e"


@pytest.mark.parametrize(
    "key",
    [
        "secretkey",
        "s3_secretkey",
        "pwd",
        "pass_word",
        "bearer",
        "bearer_token",
        "hf_token",
        f"hf_t{CYRILLIC_O}ken",  # a Cyrillic о
        "HF_TOKEN",
        "hfToken",
        "apiKey",
        "api-key",
        "AWS_SECRET_ACCESS_KEY",
        "aws_access_key_id",
        "client_secret",
        "db_password",
        "authtoken",
        "private_key",
        "ｈｆ＿ｔｏｋｅｎ",  # fullwidth
        "hf_to\u200bken",  # a zero-width space inside
        "--hub_token",
        "Authorization",
    ],
)
def test_it_finds_credential_keys_however_spelled(key: str) -> None:
    assert names_credential(key), key


@pytest.mark.parametrize(
    "key",
    [
        "tokenizer_name",
        "max_tokens",
        "num_train_epochs",
        "learning_rate",
        "bypass_cache",
        "compass",
        "keyframes",
        "model_family",
        "pretrained_model_name_or_path",
        "--resolution",
        "checkpointing_steps",
        "passes",
        "caption_dropout_probability",
    ],
)
def test_it_leaves_ordinary_training_keys_alone(key: str) -> None:
    assert not names_credential(key), key


def test_it_reports_nested_paths() -> None:
    config = {"ok": 1, "hub": {"hf_token": "x"}, "datasets": [{"id": "a"}, {"s3_secretkey": "y"}]}
    assert credential_keys(config) == ["hub.hf_token", "datasets.1.s3_secretkey"]


_LOOKALIKES = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441", "s": "\u0455", "i": "\u0456"}
_separators = st.sampled_from(["", "_", "-", ".", " ", "__"])


@st.composite
def disguised(draw: st.DrawFn, word: str) -> str:
    """`word` in any case, some letters replaced by look-alikes, other words around it."""
    letters = []
    for char in word:
        if char in _LOOKALIKES and draw(st.booleans()):
            char = _LOOKALIKES[char]
        letters.append(char.upper() if draw(st.booleans()) else char)
    prefix = draw(st.sampled_from(["", "hf", "s3", "my", "aws", "db"]))
    suffix = draw(st.sampled_from(["", "value", "id", "v2"]))
    # A separator between words (a whole credential word needs one; a spelling does not).
    before = draw(_separators.filter(bool)) if prefix else ""
    after = draw(_separators.filter(bool)) if suffix else ""
    return prefix + before + "".join(letters) + after + suffix


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.sampled_from(CREDENTIAL_SPELLINGS).flatmap(disguised))
def test_a_disguised_credential_spelling_is_always_found(key: str) -> None:
    assert names_credential(key), (key, readable_form(key))


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.sampled_from(["token", "pwd", "bearer"]).flatmap(disguised))
def test_a_disguised_credential_word_is_always_found(key: str) -> None:
    assert names_credential(key), (key, readable_form(key))


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    st.recursive(
        st.dictionaries(st.text(max_size=12), st.integers(), max_size=4),
        lambda c: st.dictionaries(st.text(max_size=12), c, max_size=3) | st.lists(c, max_size=3),
        max_leaves=10,
    )
)
def test_the_check_never_fails_on_any_config_shape(config: object) -> None:
    assert isinstance(credential_keys(config), list)


@pytest.mark.django_db
def test_a_submission_with_a_disguised_token_is_refused_and_not_stored(alice_client: APIClient) -> None:
    body = {"provider": "local", "config": {"max_train_steps": 1, f"hf_t{CYRILLIC_O}ken": "hf_abc"}}
    response = alice_client.post("/api/cloud/jobs/submit", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert "credentials do not belong in a job config" in response.json()["detail"]
    assert Job.objects.count() == 0
