"""The secrets chain's stores beyond the environment: a private file, AWS Secrets Manager, Vault.

Each store yields a flat document of name -> value. Parsing and validation are shared, and
their error messages name the file or store, the line or the key, never a value (a YAML
error's own text quotes the offending line, so it is rebuilt from its position instead).
Network clients are created lazily on first use, with timeouts, so an unreachable store
neither slows start-up nor hangs a request for longer than SIMPLETUNER_SECRETS_TIMEOUT.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings

from cloudops.secrets import CachedStore, Clock, SecretProvider, SecretProviderError

# A secrets file is a handful of tokens; anything bigger is a mistake (a wrong path).
MAX_FILE_BYTES = 1024 * 1024
FILE_NAMES = ("secrets.json", "secrets.yaml", "secrets.yml")


def build_stores(*, clock: Clock) -> list[SecretProvider]:
    """The stores after the environment, in priority order, as configured by settings."""
    stores: list[SecretProvider] = [
        FileStore(explicit=settings.SIMPLETUNER_SECRETS_FILE, home=settings.SIMPLETUNER_HOME)
    ]
    cache = partial(
        CachedStore, ttl=settings.SIMPLETUNER_SECRETS_TTL, retry=settings.SIMPLETUNER_SECRETS_RETRY, clock=clock
    )
    if settings.SIMPLETUNER_AWS_SECRET_NAME:
        aws = AwsSecretsManager(
            secret_name=settings.SIMPLETUNER_AWS_SECRET_NAME,
            region=settings.SIMPLETUNER_AWS_REGION,
            timeout=settings.SIMPLETUNER_SECRETS_TIMEOUT,
        )
        stores.append(cache(name="aws-secrets-manager", location=aws.location, fetch=aws.fetch))
    if settings.SIMPLETUNER_VAULT_PATH:
        vault = Vault(
            addr=settings.SIMPLETUNER_VAULT_ADDR,
            mount=settings.SIMPLETUNER_VAULT_MOUNT,
            path=settings.SIMPLETUNER_VAULT_PATH,
            namespace=settings.SIMPLETUNER_VAULT_NAMESPACE,
            skip_verify=settings.SIMPLETUNER_VAULT_SKIP_VERIFY,
            timeout=settings.SIMPLETUNER_SECRETS_TIMEOUT,
        )
        stores.append(cache(name="vault", location=vault.location, fetch=vault.fetch))
    return stores


# --- Parsing -----------------------------------------------------------------------------------


def flat_document(data: Any, *, origin: str) -> dict[str, str]:
    """Check that `data` is a flat name -> value mapping and return it as strings.

    Numbers are accepted as their text (a YAML `pin: 1234`); null means "not set". Booleans,
    lists and nested mappings are refused: `token: yes` silently becoming "True" would be worse.
    """
    if not isinstance(data, dict):
        raise SecretProviderError(f"{origin} must hold an object of NAME: value pairs, not {_kind(data)}")
    values: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not key:
            raise SecretProviderError(f"{origin}: the name {key!r} is not a non-empty string")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise SecretProviderError(f"{origin}: the value of {key} must be a string, not {_kind(value)}")
        values[key] = str(value)
    return values


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean", type(None): "null"}.get(
        type(value), f"a {type(value).__name__}"
    )


def parse_json(text: str, *, origin: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # JSONDecodeError's msg is a description and position only, never the input.
        raise SecretProviderError(f"{origin} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    return flat_document(data, origin=origin)


def parse_yaml(text: str, *, origin: str) -> dict[str, str]:
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise SecretProviderError(f"{origin} is not valid YAML: {exc.problem or exc.context}{where}")
    except yaml.YAMLError as exc:
        raise SecretProviderError(f"{origin} is not valid YAML ({type(exc).__name__})")
    return flat_document({} if data is None else data, origin=origin)


# --- The file ----------------------------------------------------------------------------------


class FileStore:
    """`$SIMPLETUNER_HOME/secrets.json|yaml|yml`, or SIMPLETUNER_SECRETS_FILE.

    Refused while group or others have any access (like ssh keys), and re-read whenever it
    changes on disk: a stat per lookup is cheap and makes an edited file visible at once.
    """

    name = "file"

    def __init__(self, *, explicit: Path | None, home: Path) -> None:
        self._explicit = explicit
        self._candidates = [explicit] if explicit else [home / name for name in FILE_NAMES]
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, ...], dict[str, str]] | None = None

    @property
    def location(self) -> str:
        existing = self._existing()
        return str(existing[0] if len(existing) == 1 else self._candidates[0])

    def configured(self) -> bool:
        return self._explicit is not None or bool(self._existing())

    def get(self, key: str) -> str | None:
        return self._document().get(key)

    def check(self) -> None:
        self._document()

    def _existing(self) -> list[Path]:
        return [path for path in self._candidates if path.exists()]

    def _path(self) -> Path:
        existing = self._existing()
        if len(existing) > 1:
            names = " and ".join(str(p) for p in existing)
            raise SecretProviderError(f"both {names} exist; keep one so it is clear which is used")
        if not existing:
            raise SecretProviderError(f"{self._candidates[0]} does not exist")
        return existing[0]

    def _document(self) -> dict[str, str]:
        path = self._path()
        try:
            st = path.stat()
        except OSError as exc:
            raise SecretProviderError(f"cannot read {path}: {exc.strerror}")
        _check_private(path, st)
        signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)
        cached = self._cached
        if cached is not None and cached[0] == signature:
            return cached[1]
        with self._lock:
            document = self._read(path)
            self._cached = (signature, document)
        return document

    def _read(self, path: Path) -> dict[str, str]:
        try:
            with path.open("rb") as handle:
                # Checked again on the open file: the one we read is the one we checked.
                _check_private(path, os.fstat(handle.fileno()))
                raw = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise SecretProviderError(f"cannot read {path}: {exc.strerror}")
        if len(raw) > MAX_FILE_BYTES:
            raise SecretProviderError(f"{path} is larger than {MAX_FILE_BYTES} bytes; is it the right file?")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretProviderError(f"{path} is not UTF-8 text")
        parse = parse_json if path.suffix.lower() == ".json" else parse_yaml
        return parse(text, origin=str(path))


def _check_private(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise SecretProviderError(f"{path} is not a regular file")
    if st.st_mode & 0o077:
        mode = oct(stat.S_IMODE(st.st_mode))[2:].zfill(4)
        raise SecretProviderError(
            f"refusing {path}: it is accessible by group or others (mode {mode}); run: chmod 600 {path}"
        )


# --- AWS Secrets Manager -------------------------------------------------------------------------


class AwsSecretsManager:
    """One secret whose SecretString is a JSON object of NAME: value pairs.

    Region, credentials and endpoint come from boto3's usual chain (AWS_REGION or
    AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, AWS_PROFILE,
    instance and task roles, AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_SECRETS_MANAGER).
    """

    def __init__(self, *, secret_name: str, region: str | None, timeout: float) -> None:
        self.secret_name = secret_name
        self.region = region
        self.timeout = timeout
        self._client: Any = None
        self.location = f"secret {secret_name!r}" + (f" in {region}" if region else "")

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # One attempt: the chain's retry interval is the retry, so a dead endpoint costs
            # one timeout per interval instead of several per request.
            config = Config(
                connect_timeout=self.timeout,
                read_timeout=self.timeout,
                retries={"total_max_attempts": 1, "mode": "standard"},
            )
            self._client = boto3.session.Session().client("secretsmanager", region_name=self.region, config=config)
        return self._client

    def fetch(self) -> dict[str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        origin = f"AWS secret {self.secret_name!r}"
        try:
            response = self.client().get_secret_value(SecretId=self.secret_name)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise SecretProviderError(f"{origin}: {error.get('Code', 'error')}: {error.get('Message', '')}".rstrip())
        except BotoCoreError as exc:
            raise SecretProviderError(f"{origin}: {type(exc).__name__}: {exc}")
        text = response.get("SecretString")
        if text is None:
            raise SecretProviderError(f"{origin} is binary; store a JSON object as its SecretString")
        return parse_json(text, origin=origin)


# --- HashiCorp Vault / OpenBao -------------------------------------------------------------------


class Vault:
    """One KV version 2 secret whose data holds NAME: value pairs.

    The token is VAULT_TOKEN (or BAO_TOKEN, or the CLI's ~/.vault-token), read when the client
    is created and again after a permission error. cloudops does not renew it: use a periodic
    token or let Vault Agent keep ~/.vault-token fresh. VAULT_CACERT / VAULT_CAPATH /
    VAULT_CLIENT_CERT are honoured by hvac.
    """

    def __init__(
        self, *, addr: str, mount: str, path: str, namespace: str | None, skip_verify: bool, timeout: float
    ) -> None:
        self.addr = addr
        self.mount = mount
        self.path = path
        self.namespace = namespace
        self.skip_verify = skip_verify
        self.timeout = timeout
        self._client: Any = None
        self.location = f"{addr} {mount}/{path} (KV v2)"

    def client(self) -> Any:
        if self._client is None:
            import hvac

            token = os.environ.get("VAULT_TOKEN") or os.environ.get("BAO_TOKEN") or None
            client = hvac.Client(
                url=self.addr,
                token=token,
                namespace=self.namespace,
                timeout=self.timeout,
                verify=False if self.skip_verify else None,
            )
            if not client.token:
                raise SecretProviderError("no Vault token: set VAULT_TOKEN (or BAO_TOKEN)")
            self._client = client
        return self._client

    def fetch(self) -> dict[str, str]:
        import hvac.exceptions
        import requests

        origin = f"Vault secret {self.mount}/{self.path}"
        try:
            response = self.client().secrets.kv.v2.read_secret_version(
                path=self.path, mount_point=self.mount, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            raise SecretProviderError(f"{origin} does not exist (or the mount is not KV version 2)")
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
            # Build the client again next time: a token file (~/.vault-token, as Vault Agent
            # writes it) may hold a fresh token by then.
            self._client = None
            raise SecretProviderError(f"{origin}: permission denied (check the token and its policy)")
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise SecretProviderError(f"{origin}: {type(exc).__name__}: {_short(exc)}")
        data = (response or {}).get("data", {})
        return flat_document(data.get("data") if isinstance(data, Mapping) else None, origin=origin)


def _short(exc: Exception) -> str:
    # requests' connection errors nest the whole urllib3 retry story; the last line is enough.
    text = str(exc).strip()
    return text if len(text) <= 300 else text[:297] + "..."
