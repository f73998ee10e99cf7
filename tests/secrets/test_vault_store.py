from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings

from cloudops import secrets
from tests.secrets.conftest import RETRY, TTL, FakeClock, vault_admin, vault_write
from tests.secrets.servers import VAULT_ROOT_TOKEN, ServerProcess

pytestmark = pytest.mark.services

VALUE = "r8_vault_value_9e2b44"


def vault_error(key: str) -> str:
    found = secrets.lookup(key)
    assert found.value is None
    assert len(found.errors) == 1 and found.errors[0].startswith("vault: ")
    return found.errors[0]


@pytest.mark.slow
def test_a_kv2_secret_is_read(bao: ServerProcess, use_vault: Callable[..., str]) -> None:
    use_vault(bao, {"REPLICATE_API_TOKEN": VALUE, "PORT_NUMBER": 8080})
    assert secrets.lookup("REPLICATE_API_TOKEN").source == "vault"
    assert secrets.get_secret("REPLICATE_API_TOKEN") == VALUE
    assert secrets.get_secret("PORT_NUMBER") == "8080"
    assert secrets.get_secret("NOT_THERE") is None


@pytest.mark.slow
def test_the_mount_is_configurable(bao: ServerProcess, use_vault: Callable[..., str]) -> None:
    mount = f"kv-{uuid.uuid4().hex[:8]}"
    vault_admin(bao).sys.enable_secrets_engine(backend_type="kv", path=mount, options={"version": "2"})
    use_vault(bao, {"HF_TOKEN": "hf_from_custom_mount"}, mount=mount)
    assert secrets.get_secret("HF_TOKEN") == "hf_from_custom_mount"


@pytest.mark.slow
def test_a_new_version_shows_after_the_ttl(bao: ServerProcess, use_vault: Callable[..., str], clock: FakeClock) -> None:
    path = use_vault(bao, {"REPLICATE_API_TOKEN": "r8_v1"})
    assert secrets.get_secret("REPLICATE_API_TOKEN") == "r8_v1"
    vault_write(bao, path, {"REPLICATE_API_TOKEN": "r8_v2"})
    clock.advance(TTL - 0.5)
    assert secrets.get_secret("REPLICATE_API_TOKEN") == "r8_v1"
    clock.advance(0.5)
    assert secrets.get_secret("REPLICATE_API_TOKEN") == "r8_v2"


@pytest.mark.slow
def test_a_path_that_does_not_exist_is_reported(
    bao: ServerProcess, use_vault: Callable[..., str], settings: Settings
) -> None:
    use_vault(bao, {"HF_TOKEN": "x"})
    settings.SIMPLETUNER_VAULT_PATH = "cloudops/nothing-here"
    assert "Vault secret secret/cloudops/nothing-here does not exist" in vault_error("HF_TOKEN")


@pytest.mark.slow
def test_a_wrong_token_is_reported_without_the_token(
    bao: ServerProcess, use_vault: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_vault(bao, {"HF_TOKEN": "x"})
    monkeypatch.setenv("VAULT_TOKEN", "s.wrong-token-4d1c")
    error = vault_error("HF_TOKEN")
    assert "permission denied" in error
    assert "wrong-token-4d1c" not in error and VAULT_ROOT_TOKEN not in error


@pytest.mark.slow
def test_a_missing_token_is_reported_before_contacting_vault(
    bao: ServerProcess, use_vault: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_vault(bao, {"HF_TOKEN": "x"})
    monkeypatch.delenv("VAULT_TOKEN")
    assert "no Vault token: set VAULT_TOKEN (or BAO_TOKEN)" in vault_error("HF_TOKEN")


@pytest.mark.slow
def test_openbaos_own_token_variable_works_too(
    bao: ServerProcess, use_vault: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_vault(bao, {"HF_TOKEN": "hf_bao"})
    monkeypatch.delenv("VAULT_TOKEN")
    monkeypatch.setenv("BAO_TOKEN", VAULT_ROOT_TOKEN)
    assert secrets.get_secret("HF_TOKEN") == "hf_bao"


@pytest.mark.slow
def test_a_nested_value_is_refused_naming_the_key_only(bao: ServerProcess, use_vault: Callable[..., str]) -> None:
    use_vault(bao, {"HF_TOKEN": {"inner": VALUE}})
    error = vault_error("HF_TOKEN")
    assert "the value of HF_TOKEN must be a string, not an object" in error
    assert VALUE not in error


def test_a_vault_that_never_answers_times_out_instead_of_hanging(
    clock: FakeClock, settings: Settings, monkeypatch: pytest.MonkeyPatch, silent_server: str
) -> None:
    settings.SIMPLETUNER_SECRETS_TIMEOUT = 0.5
    settings.SIMPLETUNER_VAULT_ADDR = silent_server
    settings.SIMPLETUNER_VAULT_PATH = "cloudops/hung"
    monkeypatch.setenv("VAULT_TOKEN", VAULT_ROOT_TOKEN)
    error = vault_error("HF_TOKEN")
    assert "Timeout" in error


@pytest.mark.slow
def test_a_token_file_is_read_again_after_a_permission_error(
    bao: ServerProcess, use_vault: Callable[..., str], monkeypatch: pytest.MonkeyPatch, clock: FakeClock, tmp_path: Path
) -> None:
    # As Vault Agent does: the token lives in ~/.vault-token and is replaced when it expires.
    use_vault(bao, {"HF_TOKEN": "hf_agent"})
    monkeypatch.delenv("VAULT_TOKEN")
    token_file = Path(os.environ["HOME"]) / ".vault-token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text("s.expired-token")
    assert "permission denied" in vault_error("HF_TOKEN")
    token_file.write_text(VAULT_ROOT_TOKEN)
    clock.advance(RETRY)
    assert secrets.get_secret("HF_TOKEN") == "hf_agent"
