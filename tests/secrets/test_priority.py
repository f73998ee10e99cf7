from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cloudops import secrets
from tests.secrets.conftest import FakeClock, sources, write_secrets_file
from tests.secrets.servers import ServerProcess

pytestmark = pytest.mark.services


@pytest.fixture
def four_providers(
    monkeypatch: pytest.MonkeyPatch,
    home: Path,
    moto: ServerProcess,
    bao: ServerProcess,
    use_aws: Callable[..., str],
    use_vault: Callable[..., str],
) -> None:
    """A in all four providers, B in the three stores, C in AWS and Vault, D in Vault only."""
    monkeypatch.setenv("A", "a-from-env")
    write_secrets_file(home, {"A": "a-from-file", "B": "b-from-file"})
    use_aws(moto, {"A": "a-from-aws", "B": "b-from-aws", "C": "c-from-aws"})
    use_vault(bao, {"A": "a-from-vault", "B": "b-from-vault", "C": "c-from-vault", "D": "d-from-vault"})


@pytest.mark.slow
def test_each_key_comes_from_the_highest_priority_provider_that_has_it(four_providers: None) -> None:
    assert sources("A", "B", "C", "D", "E") == {
        "A": "environment",
        "B": "file",
        "C": "aws-secrets-manager",
        "D": "vault",
        "E": None,
    }
    assert [secrets.get_secret(k) for k in "ABCD"] == ["a-from-env", "b-from-file", "c-from-aws", "d-from-vault"]


@pytest.mark.slow
def test_a_missing_key_returns_the_default_and_reports_no_errors(four_providers: None) -> None:
    assert secrets.get_secret("E") is None
    assert secrets.get_secret("E", default="fallback") == "fallback"
    found = secrets.lookup("E")
    assert not found.found and found.source is None and found.errors == ()


@pytest.mark.slow
def test_the_chain_lists_the_configured_providers_in_priority_order(four_providers: None) -> None:
    assert [p.name for p in secrets.providers()] == ["environment", "file", "aws-secrets-manager", "vault"]


def test_only_the_environment_is_active_when_nothing_else_is_configured(clock: FakeClock) -> None:
    assert [p.name for p in secrets.providers()] == ["environment"]


@pytest.mark.slow
def test_an_empty_value_counts_as_not_set_and_lower_providers_answer(
    four_providers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("A", "")
    assert secrets.lookup("A").source == "file"
    assert secrets.get_secret("A") == "a-from-file"


@pytest.mark.slow
def test_the_server_key_is_read_through_the_chain(
    home: Path, bao: ServerProcess, use_vault: Callable[..., str]
) -> None:
    from cloudops import keys

    use_vault(bao, {"SIMPLETUNER_SERVER_KEY": "server-key-from-vault"})
    assert keys.server_key() == b"server-key-from-vault"


async def test_async_code_reads_through_the_same_chain(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_async")
    assert await secrets.aget_secret("HF_TOKEN") == "hf_async"
    assert await secrets.aget_secret("ABSENT", default="d") == "d"
