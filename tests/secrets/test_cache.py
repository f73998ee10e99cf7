"""The per-process cache in front of a remote store, with a plain function as the store."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

import pytest

from cloudops.secrets import CachedStore, SecretProviderError
from cloudops.structured_logging import logging_config
from tests.secrets.conftest import FakeClock


class Store:
    """A store whose answers the test controls, counting how often it is read."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {"TOKEN": "v1"}
        self.down: Exception | None = None
        self.reads = 0

    def fetch(self) -> Mapping[str, str]:
        self.reads += 1
        if self.down is not None:
            raise self.down
        return dict(self.values)


def cached(store: Store, clock: FakeClock, ttl: float = 60, retry: float = 5) -> CachedStore:
    return CachedStore(name="remote", location="test", fetch=store.fetch, ttl=ttl, retry=retry, clock=clock)


def test_one_read_serves_every_key_until_the_ttl() -> None:
    store, clock = Store(), FakeClock()
    remote = cached(store, clock)
    assert remote.get("TOKEN") == "v1"
    assert remote.get("OTHER") is None
    clock.advance(59.9)
    assert remote.get("TOKEN") == "v1"
    assert store.reads == 1
    store.values["TOKEN"] = "v2"
    clock.advance(0.1)
    assert remote.get("TOKEN") == "v2"
    assert store.reads == 2


def test_a_zero_ttl_reads_the_store_every_time() -> None:
    store, clock = Store(), FakeClock()
    remote = cached(store, clock, ttl=0)
    remote.get("TOKEN")
    remote.get("TOKEN")
    assert store.reads == 2


def test_a_failure_drops_the_values_and_is_remembered_only_for_the_retry_interval() -> None:
    store, clock = Store(), FakeClock()
    remote = cached(store, clock)
    assert remote.get("TOKEN") == "v1"
    store.down = SecretProviderError("connection refused")
    clock.advance(60)
    with pytest.raises(SecretProviderError, match="connection refused"):
        remote.get("TOKEN")
    store.down = None
    clock.advance(4.9)
    with pytest.raises(SecretProviderError, match="connection refused"):
        remote.check()
    assert store.reads == 2
    clock.advance(0.1)
    assert remote.get("TOKEN") == "v1"
    assert store.reads == 3


def test_an_unexpected_exception_becomes_a_provider_error_naming_its_type() -> None:
    store, clock = Store(), FakeClock()
    store.down = RuntimeError("socket exploded")
    with pytest.raises(SecretProviderError, match="RuntimeError: socket exploded"):
        cached(store, clock).get("TOKEN")


def test_concurrent_lookups_after_expiry_cause_one_read() -> None:
    store, clock = Store(), FakeClock()
    release = threading.Event()
    entered = threading.Event()

    def slow_fetch() -> Mapping[str, str]:
        store.reads += 1
        entered.set()
        release.wait(timeout=10)
        return dict(store.values)

    remote = CachedStore(name="remote", location="test", fetch=slow_fetch, ttl=60, retry=5, clock=clock)
    results: list[str | None] = []
    threads = [threading.Thread(target=lambda: results.append(remote.get("TOKEN"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    assert entered.wait(timeout=10)
    # Give the other threads time to arrive; without the lock each would start its own read.
    time.sleep(0.2)
    release.set()
    for thread in threads:
        thread.join(timeout=10)
    assert results == ["v1"] * 8
    assert store.reads == 1


def test_debug_logging_never_lets_botocore_log_bodies() -> None:
    # botocore logs GetSecretValue's response body (the secret) at DEBUG.
    assert logging_config(level="DEBUG")["loggers"]["botocore"]["level"] == "INFO"
    assert logging_config(level="WARNING")["loggers"]["botocore"]["level"] == "WARNING"
