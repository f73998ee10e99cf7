from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from pytest_django.fixtures import Settings

from cloudops import secrets
from tests.secrets.conftest import REGION, TTL, FakeClock, aws_admin
from tests.secrets.servers import ServerProcess

pytestmark = pytest.mark.services

VALUE = "r8_aws_value_51c0de"


def aws_errors(key: str) -> str:
    found = secrets.lookup(key)
    assert found.value is None
    assert len(found.errors) == 1 and found.errors[0].startswith("aws-secrets-manager: ")
    return found.errors[0]


@pytest.mark.slow
def test_a_json_secret_is_read_through_aws_endpoint_url(moto: ServerProcess, use_aws: Callable[..., str]) -> None:
    use_aws(moto, {"REPLICATE_API_TOKEN": VALUE, "HF_TOKEN": "hf_aws"})
    assert secrets.lookup("REPLICATE_API_TOKEN").source == "aws-secrets-manager"
    assert secrets.get_secret("REPLICATE_API_TOKEN") == VALUE
    assert secrets.get_secret("HF_TOKEN") == "hf_aws"
    assert secrets.get_secret("NOT_THERE") is None


@pytest.mark.slow
def test_the_service_specific_endpoint_variable_is_honoured(
    moto: ServerProcess, use_aws: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_aws(moto, {"HF_TOKEN": "hf_aws"})
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing answers
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.url)
    assert secrets.get_secret("HF_TOKEN") == "hf_aws"


@pytest.mark.slow
def test_the_default_region_variable_is_honoured(
    moto: ServerProcess, use_aws: Callable[..., str], monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    use_aws(moto, {"HF_TOKEN": "hf_aws"})
    settings.SIMPLETUNER_AWS_REGION = None
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    assert secrets.get_secret("HF_TOKEN") == "hf_aws"


@pytest.mark.slow
def test_values_are_cached_until_the_ttl_and_a_rotation_shows_after_it(
    moto: ServerProcess, use_aws: Callable[..., str], clock: FakeClock
) -> None:
    name = use_aws(moto, {"REPLICATE_API_TOKEN": "r8_before"})
    assert secrets.get_secret("REPLICATE_API_TOKEN") == "r8_before"
    aws_admin(moto).put_secret_value(SecretId=name, SecretString=json.dumps({"REPLICATE_API_TOKEN": "r8_after"}))
    clock.advance(TTL - 1)
    assert secrets.get_secret("REPLICATE_API_TOKEN") == "r8_before"
    clock.advance(1)
    assert secrets.get_secret("REPLICATE_API_TOKEN") == "r8_after"


@pytest.mark.slow
def test_a_key_added_to_the_store_is_found_after_the_ttl_not_cached_as_missing(
    moto: ServerProcess, use_aws: Callable[..., str], clock: FakeClock
) -> None:
    name = use_aws(moto, {"REPLICATE_API_TOKEN": VALUE})
    assert secrets.get_secret("HF_TOKEN") is None
    aws_admin(moto).put_secret_value(
        SecretId=name, SecretString=json.dumps({"REPLICATE_API_TOKEN": VALUE, "HF_TOKEN": "hf_new"})
    )
    clock.advance(TTL)
    assert secrets.get_secret("HF_TOKEN") == "hf_new"


@pytest.mark.slow
def test_a_secret_that_does_not_exist_is_reported(
    moto: ServerProcess, use_aws: Callable[..., str], settings: Settings
) -> None:
    use_aws(moto, {"HF_TOKEN": "x"})
    settings.SIMPLETUNER_AWS_SECRET_NAME = "cloudops/does-not-exist"
    error = aws_errors("HF_TOKEN")
    assert "AWS secret 'cloudops/does-not-exist'" in error
    assert "ResourceNotFoundException" in error


@pytest.mark.slow
@pytest.mark.parametrize(
    ("secret_string", "expected"),
    [
        (f"token={VALUE}", "is not valid JSON"),
        (json.dumps([VALUE]), "must hold an object of NAME: value pairs, not a list"),
        (json.dumps({"HF_TOKEN": {"v": VALUE}}), "the value of HF_TOKEN must be a string"),
    ],
)
def test_a_secret_that_is_not_a_json_object_is_reported_without_its_content(
    moto: ServerProcess, use_aws: Callable[..., str], secret_string: str, expected: str
) -> None:
    use_aws(moto, secret_string)
    error = aws_errors("HF_TOKEN")
    assert expected in error
    assert VALUE not in error


@pytest.mark.slow
def test_a_binary_secret_is_reported(moto: ServerProcess, use_aws: Callable[..., str], settings: Settings) -> None:
    use_aws(moto, {"HF_TOKEN": "x"})
    name = "cloudops/binary-" + settings.SIMPLETUNER_AWS_SECRET_NAME.rsplit("/", 1)[-1]
    aws_admin(moto).create_secret(Name=name, SecretBinary=VALUE.encode())
    settings.SIMPLETUNER_AWS_SECRET_NAME = name
    assert "is binary; store a JSON object as its SecretString" in aws_errors("HF_TOKEN")


@pytest.mark.slow
def test_missing_credentials_are_reported_not_raised(
    moto: ServerProcess, use_aws: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_aws(moto, {"HF_TOKEN": "x"})
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert "NoCredentialsError" in aws_errors("HF_TOKEN")


@pytest.mark.slow
def test_a_missing_region_is_reported_not_raised(
    moto: ServerProcess, use_aws: Callable[..., str], settings: Settings
) -> None:
    use_aws(moto, {"HF_TOKEN": "x"})
    settings.SIMPLETUNER_AWS_REGION = None
    assert "NoRegionError" in aws_errors("HF_TOKEN")


def test_a_store_that_is_never_needed_is_never_contacted(
    clock: FakeClock, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Configured, but pointing at a port where nothing listens: an environment hit must not
    # even create the client, let alone wait for it.
    settings.SIMPLETUNER_AWS_SECRET_NAME = "cloudops/unused"
    settings.SIMPLETUNER_AWS_REGION = REGION
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_env")
    found = secrets.lookup("REPLICATE_API_TOKEN")
    assert (found.value, found.source, found.errors) == ("r8_env", "environment", ())


def test_a_store_that_never_answers_times_out_instead_of_hanging(
    clock: FakeClock, settings: Settings, monkeypatch: pytest.MonkeyPatch, silent_server: str
) -> None:
    settings.SIMPLETUNER_SECRETS_TIMEOUT = 0.5
    settings.SIMPLETUNER_AWS_SECRET_NAME = "cloudops/hung"
    settings.SIMPLETUNER_AWS_REGION = REGION
    monkeypatch.setenv("AWS_ENDPOINT_URL", silent_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert "ReadTimeoutError" in aws_errors("HF_TOKEN")
