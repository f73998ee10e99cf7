"""The secrets chain: every provider token, webhook secret and server key is read here.

Providers are asked in priority order and the first one that has the key wins. The
environment is always first, so an operator can override any stored secret. Further
providers (file, AWS Secrets Manager, Vault/OpenBao) plug in behind `SecretProvider`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol


class SecretProviderError(Exception):
    """A provider is configured but could not be read (outage, permissions, bad file)."""


class SecretProvider(Protocol):
    name: str

    def get(self, key: str) -> str | None:
        """The value of `key`, None if this provider does not have it.

        Raises SecretProviderError when the provider cannot answer at all.
        """


class EnvironmentProvider:
    name = "environment"

    def get(self, key: str) -> str | None:
        value = os.environ.get(key)
        return value if value else None


@dataclass(frozen=True)
class SecretLookup:
    key: str
    value: str | None
    source: str | None
    errors: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return self.value is not None


def providers() -> list[SecretProvider]:
    return [EnvironmentProvider()]


def lookup(key: str) -> SecretLookup:
    """Find `key` in the chain; provider failures are collected, not raised."""
    errors: list[str] = []
    for provider in providers():
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
