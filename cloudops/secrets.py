"""The secrets chain: every provider token, webhook secret and server key is read here.

Providers are asked in priority order and the first one that has the key wins:

1. the process environment (always first, so an operator can override any stored secret);
2. a private file, `$SIMPLETUNER_HOME/secrets.json` or `secrets.yaml` (or SIMPLETUNER_SECRETS_FILE);
3. AWS Secrets Manager, when SIMPLETUNER_AWS_SECRET_NAME is set;
4. HashiCorp Vault / OpenBao (KV v2), when SIMPLETUNER_VAULT_PATH is set.

A provider that cannot answer (outage, bad file, denied) is skipped: lower providers still
answer, and the failure travels with the result in `SecretLookup.errors` so health and
`manage.py secrets_check` can report it. Error texts name files, stores and keys, never values.

Caching is per process, on purpose: copying secrets into the database or Redis so processes
could share them would put them in one more place to leak from. Each process keeps what a
remote store returned for SIMPLETUNER_SECRETS_TTL seconds and then reads it again, so a
rotated value is seen by every process within one TTL. A failed read is remembered for
SIMPLETUNER_SECRETS_RETRY seconds only (never as "no secrets"), then the store is tried again.
The file is re-read whenever it changes on disk (a stat per lookup), the environment live.

`get_secret` does blocking I/O on a cache miss: async code uses `aget_secret`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from asgiref.sync import sync_to_async
from django.core.signals import setting_changed
from django.dispatch import receiver

from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.secrets")

Clock = Callable[[], float]

# The secrets cloudops itself reads through the chain; `secrets_check` lists them all.
KNOWN_SECRETS: tuple[str, ...] = (
    "REPLICATE_API_TOKEN",
    "REPLICATE_WEBHOOK_SECRET",
    "HF_TOKEN",
    "SIMPLETUNER_AUDIT_KEY",
    "SIMPLETUNER_METRICS_TOKEN",
    "SIMPLETUNER_SERVER_KEY",
)


class SecretProviderError(Exception):
    """A provider is configured but could not be read (outage, permissions, bad file).

    The message is shown to operators (staff health, secrets_check, logs): it may name the
    file, store or key, and must never contain a secret value.
    """


class SecretProvider(Protocol):
    """One source of secrets in the chain."""

    # Short public name reported as a key's source: environment, file, aws-secrets-manager, vault.
    @property
    def name(self) -> str: ...

    # Where it reads from (a path, a store address), for operators; never a credential.
    @property
    def location(self) -> str: ...

    def get(self, key: str) -> str | None:
        """The value of `key`, None if this provider does not have it.

        Raises SecretProviderError when the provider cannot answer at all.
        """

    def check(self) -> None:
        """Raise SecretProviderError unless the provider can be read right now (or from cache)."""


class EnvironmentProvider:
    name = "environment"
    location = "process environment"

    def get(self, key: str) -> str | None:
        value = os.environ.get(key)
        return value if value else None

    def check(self) -> None:
        return None


_ENVIRONMENT = EnvironmentProvider()


@dataclass(frozen=True)
class SecretLookup:
    key: str
    value: str | None
    source: str | None
    errors: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return self.value is not None

    def __repr__(self) -> str:
        # Never let a value reach a log line or a traceback through repr().
        shown = "<hidden>" if self.value is not None else None
        return f"SecretLookup(key={self.key!r}, value={shown}, source={self.source!r}, errors={self.errors!r})"


# --- The per-process cache of a remote store ---------------------------------------------------


@dataclass(frozen=True)
class _Snapshot:
    values: Mapping[str, str] | None = None
    fresh_until: float = 0.0
    error: str | None = None
    retry_at: float = 0.0


class CachedStore:
    """A remote store read as one document (all its keys at once) and cached per process.

    Fresh values are served for `ttl` seconds. A failed read drops the cached values (a value
    is never served past its TTL, so a revoked secret stops being used and lower providers
    answer instead) and is remembered for `retry` seconds, during which the store is not
    contacted again; the next lookup after that tries again. One thread refreshes while the
    others wait for it, so an expiry causes one request to the store per process, not one per
    thread; the wait is bounded by the client's timeout.
    """

    def __init__(
        self,
        *,
        name: str,
        location: str,
        fetch: Callable[[], Mapping[str, str]],
        ttl: float,
        retry: float,
        clock: Clock,
    ) -> None:
        self.name = name
        self.location = location
        self._fetch = fetch
        self._ttl = ttl
        self._retry = retry
        self._clock = clock
        self._lock = threading.Lock()
        # Replaced whole, never mutated, so readers without the lock see a consistent state.
        self._snapshot = _Snapshot()

    def get(self, key: str) -> str | None:
        return self._document().get(key)

    def check(self) -> None:
        self._document()

    def _usable(self, snapshot: _Snapshot, now: float) -> Mapping[str, str] | None:
        if snapshot.values is not None and now < snapshot.fresh_until:
            return snapshot.values
        if snapshot.error is not None and now < snapshot.retry_at:
            raise SecretProviderError(snapshot.error)
        return None

    def _document(self) -> Mapping[str, str]:
        values = self._usable(self._snapshot, self._clock())
        if values is not None:
            return values
        with self._lock:
            # Another thread may have refreshed (or failed) while this one waited.
            values = self._usable(self._snapshot, self._clock())
            return values if values is not None else self._refresh()

    def _refresh(self) -> Mapping[str, str]:
        failed_before = self._snapshot.error is not None
        try:
            values = self._fetch()
        except Exception as exc:  # a store must report, never break the caller
            message = str(exc) if isinstance(exc, SecretProviderError) else f"{type(exc).__name__}: {exc}"
            self._snapshot = _Snapshot(error=message, retry_at=self._clock() + self._retry)
            logger.warning(
                "secrets provider %s is unavailable; retrying in %ss",
                self.name,
                self._retry,
                extra={"provider": self.name, "error": message},
            )
            raise SecretProviderError(message) from None
        if failed_before:
            logger.info("secrets provider %s is reachable again", self.name, extra={"provider": self.name})
        fresh = dict(values)
        self._snapshot = _Snapshot(values=fresh, fresh_until=self._clock() + self._ttl)
        return fresh


# --- The chain -----------------------------------------------------------------------------------

_chain_lock = threading.Lock()
_stores: list[SecretProvider] | None = None
_clock: Clock = time.monotonic


def reset(*, clock: Clock | None = None) -> None:
    """Forget cached values and clients (and optionally use another clock, for tests).

    Called automatically when a secrets setting changes under override_settings.
    """
    global _stores, _clock
    with _chain_lock:
        _stores = None
        _clock = clock or time.monotonic


def _configured_stores() -> list[SecretProvider]:
    global _stores
    with _chain_lock:
        if _stores is None:
            # Imported here: the stores module imports this one for the protocol and errors.
            from cloudops.secret_stores import build_stores

            _stores = build_stores(clock=_clock)
        return _stores


def _active() -> Iterator[SecretProvider]:
    # A generator, so a key found in the environment costs no look at the other stores.
    yield _ENVIRONMENT
    for store in _configured_stores():
        # The default file counts as configured only while it exists, so creating it later
        # needs no restart; every other store is fixed by settings at start-up.
        configured = getattr(store, "configured", None)
        if configured is None or configured():
            yield store


def providers() -> list[SecretProvider]:
    """The configured providers in priority order (the environment is always there)."""
    return list(_active())


def lookup(key: str) -> SecretLookup:
    """Find `key` in the chain; provider failures are collected, not raised."""
    errors: list[str] = []
    for provider in _active():
        try:
            value = provider.get(key)
        except SecretProviderError as exc:
            errors.append(f"{provider.name}: {exc}")
            continue
        if value is not None:
            return SecretLookup(key=key, value=value, source=provider.name, errors=tuple(errors))
    return SecretLookup(key=key, value=None, source=None, errors=tuple(errors))


def get_secret(key: str, default: str | None = None) -> str | None:
    found = lookup(key)
    return found.value if found.value is not None else default


async def aget_secret(key: str, default: str | None = None) -> str | None:
    """`get_secret` for async code: a cache miss may wait on a store, so not on the event loop."""
    return await sync_to_async(get_secret, thread_sensitive=False)(key, default)


# --- Reporting (health and `manage.py secrets_check`) --------------------------------------------


@dataclass(frozen=True)
class ProviderStatus:
    name: str
    location: str
    error: str | None
    latency_ms: float

    @property
    def reachable(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class KeyStatus:
    key: str
    source: str | None
    required: bool

    @property
    def status(self) -> str:
        if self.source is not None:
            return "ok"
        return "missing" if self.required else "not set"


@dataclass(frozen=True)
class SecretsReport:
    keys: tuple[KeyStatus, ...]
    providers: tuple[ProviderStatus, ...]

    @property
    def missing(self) -> list[str]:
        return [k.key for k in self.keys if k.required and k.source is None]

    @property
    def unavailable(self) -> list[ProviderStatus]:
        return [p for p in self.providers if not p.reachable]


def _provider_status(provider: SecretProvider) -> ProviderStatus:
    started = time.perf_counter()
    try:
        provider.check()
        error = None
    except SecretProviderError as exc:
        error = str(exc)
    return ProviderStatus(provider.name, provider.location, error, round((time.perf_counter() - started) * 1000, 2))


def secrets_check(*, required: Sequence[str], optional: Sequence[str] = ()) -> SecretsReport:
    """Which provider supplies each key (never the value) and whether each provider answers.

    Shared by the health `secrets` component and `manage.py secrets_check`.
    """
    statuses = tuple(_provider_status(p) for p in providers())
    names = list(dict.fromkeys([*required, *optional]))
    keys = tuple(KeyStatus(key, lookup(key).source, key in required) for key in names)
    return SecretsReport(keys=keys, providers=statuses)


_SETTINGS_PREFIXES = ("SIMPLETUNER_SECRETS_", "SIMPLETUNER_AWS_", "SIMPLETUNER_VAULT_", "SIMPLETUNER_HOME")


@receiver(setting_changed)
def _reset_on_settings_change(*, setting: str, **kwargs: object) -> None:
    if setting.startswith(_SETTINGS_PREFIXES):
        reset(clock=_clock)
