"""Fixtures for the secrets chain: a fake clock, an isolated environment, real stores.

Every test gets a fresh chain whose clock only moves when the test says so, an environment
without the developer's own tokens or AWS/Vault configuration, and a private SIMPLETUNER_HOME.
`moto` and `bao` are shared servers (one per test session, each test uses its own secret
name or path); tests that kill a server start their own with `own_moto` / `own_bao`.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import hvac
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from cloudops import secrets
from cloudops.secrets import KNOWN_SECRETS
from tests.secrets.servers import VAULT_ROOT_TOKEN, ServerProcess, bao_server, moto_server
from tests.services import require_tool

TTL = 300.0
RETRY = 10.0
REGION = "eu-west-1"


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


_AMBIENT = (
    *KNOWN_SECRETS,
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "VAULT_TOKEN",
    "BAO_TOKEN",
    "VAULT_ADDR",
    "BAO_ADDR",
)


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _AMBIENT:
        monkeypatch.delenv(name, raising=False)
    # No real AWS or Vault configuration can leak in, and boto3 never probes the EC2
    # metadata address when a test leaves credentials out on purpose.
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "simpletuner-home"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def clock(settings: SettingsWrapper, home: Path) -> Iterator[FakeClock]:
    """A fresh chain on a fake clock, with only the environment configured to start with."""
    settings.SIMPLETUNER_HOME = home
    settings.SIMPLETUNER_SECRETS_FILE = None
    settings.SIMPLETUNER_SECRETS_TTL = TTL
    settings.SIMPLETUNER_SECRETS_RETRY = RETRY
    settings.SIMPLETUNER_SECRETS_TIMEOUT = 5.0
    settings.SIMPLETUNER_AWS_SECRET_NAME = ""
    settings.SIMPLETUNER_AWS_REGION = None
    settings.SIMPLETUNER_VAULT_PATH = ""
    settings.SIMPLETUNER_VAULT_MOUNT = "secret"
    settings.SIMPLETUNER_VAULT_ADDR = ""
    settings.SIMPLETUNER_REQUIRED_SECRETS = ["REPLICATE_API_TOKEN"]
    fake = FakeClock()
    secrets.reset(clock=fake)
    yield fake
    secrets.reset()


def write_secrets_file(home: Path, values: dict[str, Any], *, name: str = "secrets.json", mode: int = 0o600) -> Path:
    path = home / name
    text = (
        json.dumps(values) if name.endswith(".json") else "".join(f"{k}: {json.dumps(v)}\n" for k, v in values.items())
    )
    path.write_text(text)
    path.chmod(mode)
    return path


# --- AWS Secrets Manager (moto server mode) ----------------------------------------------------


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = moto_server(require_tool("moto_server"), tmp_path_factory.mktemp("moto")).start()
    yield server
    server.kill()


@pytest.fixture
def own_moto(tmp_path: Path) -> Iterator[ServerProcess]:
    server = moto_server(require_tool("moto_server"), tmp_path).start()
    yield server
    server.kill()


def aws_admin(server: ServerProcess) -> Any:
    """A boto3 client for setting up secrets, independent of the code under test."""
    return boto3.client(
        "secretsmanager",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def use_aws(monkeypatch: pytest.MonkeyPatch, settings: SettingsWrapper, clock: FakeClock) -> Callable[..., str]:
    """Point the chain at a fresh secret on `server` holding `values`; return its name."""

    def configure(server: ServerProcess, values: dict[str, Any] | str) -> str:
        name = f"cloudops/test/{uuid.uuid4().hex}"
        text = values if isinstance(values, str) else json.dumps(values)
        aws_admin(server).create_secret(Name=name, SecretString=text)
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        settings.SIMPLETUNER_AWS_REGION = REGION
        settings.SIMPLETUNER_AWS_SECRET_NAME = name
        return name

    return configure


# --- Vault (OpenBao dev server) ----------------------------------------------------------------


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = bao_server(require_tool("bao"), tmp_path_factory.mktemp("bao")).start()
    yield server
    server.kill()


@pytest.fixture
def own_bao(tmp_path: Path) -> Iterator[ServerProcess]:
    server = bao_server(require_tool("bao"), tmp_path).start()
    yield server
    server.kill()


def vault_admin(server: ServerProcess) -> hvac.Client:
    return hvac.Client(url=server.url, token=VAULT_ROOT_TOKEN, timeout=10)


def vault_write(server: ServerProcess, path: str, values: dict[str, Any], mount: str = "secret") -> None:
    vault_admin(server).secrets.kv.v2.create_or_update_secret(path=path, secret=values, mount_point=mount)


@pytest.fixture
def use_vault(monkeypatch: pytest.MonkeyPatch, settings: SettingsWrapper, clock: FakeClock) -> Callable[..., str]:
    """Point the chain at a fresh KV v2 path on `server` holding `values`; return the path."""

    def configure(server: ServerProcess, values: dict[str, Any], mount: str = "secret") -> str:
        path = f"cloudops/test-{uuid.uuid4().hex}"
        vault_write(server, path, values, mount)
        monkeypatch.setenv("VAULT_TOKEN", VAULT_ROOT_TOKEN)
        settings.SIMPLETUNER_VAULT_ADDR = server.url
        settings.SIMPLETUNER_VAULT_MOUNT = mount
        settings.SIMPLETUNER_VAULT_PATH = path
        return path

    return configure


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: a hung store."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def sources(*keys: str) -> dict[str, str | None]:
    return {key: secrets.lookup(key).source for key in keys}


def env_without_secrets() -> dict[str, str]:
    """The current environment minus any real secret, for subprocesses."""
    return {k: v for k, v in os.environ.items() if k not in KNOWN_SECRETS}
