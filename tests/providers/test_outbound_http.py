"""The client factory against real local servers: TLS, proxies, NO_PROXY, timeouts, retries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from cloudops.structured_logging import correlation_scope
from providers.circuit import circuit_snapshot
from providers.config import provider_config_get, provider_config_update
from providers.errors import (
    ProviderInputError,
    ProviderProxyError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderTLSError,
    ProviderUnavailable,
)
from providers.http import NoProxy, ProviderHTTP, RetryPolicy, parse_retry_after
from providers.models import ProviderConfig
from tests.fakes.http import LoopbackServer, ProxyServer, Recorded, Reply, SelfSignedTLS, self_signed_tls
from tests.server.live import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def config() -> ProviderConfig:
    return provider_config_get("replicate")


@pytest.fixture
def tls(tmp_path: Path) -> SelfSignedTLS:
    return self_signed_tls(tmp_path)


@pytest.fixture
def https_server(tls: SelfSignedTLS) -> Iterator[LoopbackServer]:
    with LoopbackServer(tls=tls.server_context) as server:
        yield server


@pytest.fixture
def http_server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as server:
        yield server


@pytest.fixture
def proxy() -> Iterator[ProxyServer]:
    with ProxyServer() as server:
        yield server


def get(config: ProviderConfig, base_url: str, path: str = "/ping", **kwargs: object) -> dict:
    return ProviderHTTP(config, base_url=base_url).request("GET", path, idempotent=True, **kwargs).json()


def failures(provider: str = "replicate") -> int:
    return next(c for c in circuit_snapshot() if c.provider == provider).failures_total


# --- TLS ---------------------------------------------------------------------------------------


def test_a_self_signed_server_fails_by_default(config: ProviderConfig, https_server: LoopbackServer) -> None:
    with pytest.raises(ProviderTLSError, match="not trusted"):
        get(config, https_server.url())
    assert https_server.requests == []
    assert failures() == 0  # our trust configuration, not a provider failure


def test_it_passes_with_the_providers_ca_bundle(
    config: ProviderConfig, https_server: LoopbackServer, tls: SelfSignedTLS
) -> None:
    config.ssl_ca_bundle = str(tls.ca_pem)
    assert get(config, https_server.url()) == {"ok": True, "path": "/ping"}


def test_it_passes_with_ssl_verify_off(config: ProviderConfig, https_server: LoopbackServer) -> None:
    config.ssl_verify = False
    assert get(config, https_server.url())["ok"] is True


def test_the_environment_ca_bundle_applies_when_the_provider_sets_none(
    config: ProviderConfig, https_server: LoopbackServer, tls: SelfSignedTLS, settings: SettingsWrapper
) -> None:
    settings.SIMPLETUNER_CA_BUNDLE = str(tls.ca_pem)
    assert get(config, https_server.url())["ok"] is True


def test_the_providers_ssl_verify_wins_over_the_environment(
    config: ProviderConfig, https_server: LoopbackServer, settings: SettingsWrapper
) -> None:
    settings.SIMPLETUNER_SSL_VERIFY = False
    assert get(config, https_server.url())["ok"] is True
    config.ssl_verify = True
    with pytest.raises(ProviderTLSError):
        get(config, https_server.url())


def test_a_configuration_change_applies_to_the_next_call(
    config: ProviderConfig, https_server: LoopbackServer, tls: SelfSignedTLS
) -> None:
    with pytest.raises(ProviderTLSError):
        get(config, https_server.url())
    provider_config_update(provider_config=config, changes={"ssl_ca_bundle": str(tls.ca_pem)})
    assert get(provider_config_get("replicate"), https_server.url())["ok"] is True


# --- Proxies -----------------------------------------------------------------------------------


def test_calls_go_through_the_providers_proxy(
    config: ProviderConfig, http_server: LoopbackServer, proxy: ProxyServer
) -> None:
    config.proxy_url = proxy.url()
    assert get(config, http_server.url(), "/through")["path"] == "/through"
    assert [(r.method, r.path) for r in proxy.requests] == [("GET", f"{http_server.url()}/through")]
    assert len(http_server.requests) == 1


def test_https_goes_through_the_proxy_as_a_tunnel(
    config: ProviderConfig, https_server: LoopbackServer, proxy: ProxyServer, tls: SelfSignedTLS
) -> None:
    config.proxy_url = proxy.url()
    config.ssl_ca_bundle = str(tls.ca_pem)
    assert get(config, https_server.url())["ok"] is True
    assert [(r.method, r.path) for r in proxy.requests] == [("CONNECT", f"127.0.0.1:{https_server.port}")]


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "127.0.0.0/8", "localhost,127.0.0.1", "*"])
def test_no_proxy_hosts_bypass_the_proxy(
    config: ProviderConfig, http_server: LoopbackServer, proxy: ProxyServer, settings: SettingsWrapper, no_proxy: str
) -> None:
    config.proxy_url = proxy.url()
    settings.OUTBOUND_NO_PROXY = no_proxy
    assert get(config, http_server.url())["ok"] is True
    assert proxy.requests == []
    assert len(http_server.requests) == 1


def test_no_proxy_matches_names_not_other_hosts(
    config: ProviderConfig, http_server: LoopbackServer, proxy: ProxyServer, settings: SettingsWrapper
) -> None:
    config.proxy_url = proxy.url()
    settings.OUTBOUND_NO_PROXY = "localhost"
    get(config, http_server.url(host="localhost"))
    assert proxy.requests == []
    get(config, http_server.url())  # 127.0.0.1 is not "localhost" for NO_PROXY
    assert len(proxy.requests) == 1


def test_the_environment_proxy_applies_when_the_provider_sets_none(
    config: ProviderConfig, http_server: LoopbackServer, proxy: ProxyServer, settings: SettingsWrapper
) -> None:
    settings.OUTBOUND_HTTP_PROXY = proxy.url()
    get(config, http_server.url())
    assert len(proxy.requests) == 1


def test_the_providers_proxy_wins_over_the_environment(
    config: ProviderConfig, http_server: LoopbackServer, proxy: ProxyServer, settings: SettingsWrapper
) -> None:
    settings.OUTBOUND_HTTP_PROXY = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    config.proxy_url = proxy.url()
    assert get(config, http_server.url())["ok"] is True
    assert len(proxy.requests) == 1


def test_an_unreachable_proxy_is_a_proxy_error_not_a_provider_failure(
    config: ProviderConfig, http_server: LoopbackServer
) -> None:
    config.proxy_url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ProviderProxyError, match="proxy"):
        get(config, http_server.url())
    assert http_server.requests == []
    assert failures() == 0


# --- Timeouts, correlation id, retries ----------------------------------------------------------


def test_the_timeout_fires(config: ProviderConfig, settings: SettingsWrapper) -> None:
    settings.SIMPLETUNER_HTTP_RETRIES = 0
    config.http_timeout = 0.3
    with LoopbackServer(lambda r: Reply(delay=3)) as slow:
        started = datetime.now(UTC)
        with pytest.raises(ProviderTimeout, match="did not answer within the timeout"):
            get(config, slow.url())
    assert datetime.now(UTC) - started < timedelta(seconds=2.5)
    assert failures() == 1


def test_requests_carry_the_correlation_id_and_a_user_agent(
    config: ProviderConfig, http_server: LoopbackServer
) -> None:
    with correlation_scope("req-abc123"):
        get(config, http_server.url())
    headers = http_server.requests[0].headers
    assert headers["X-Request-ID"] == "req-abc123"
    assert headers["User-Agent"].startswith("cloudops/")


class Sequence:
    """A handler answering with the given replies in order, then 200."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)

    def __call__(self, recorded: Recorded) -> Reply:
        return self.replies.pop(0) if self.replies else Reply(body={"ok": True})


def recording_policy(retries: int = 3) -> tuple[RetryPolicy, list[float]]:
    slept: list[float] = []
    return RetryPolicy(retries=retries, backoff=0.01, backoff_max=0.05, retry_after_max=60, sleep=slept.append), slept


def test_idempotent_calls_are_retried_on_5xx_then_succeed(config: ProviderConfig) -> None:
    policy, slept = recording_policy()
    with LoopbackServer(Sequence(Reply(503), Reply(502))) as server:
        body = ProviderHTTP(config, base_url=server.url(), policy=policy).request("GET", "/x", idempotent=True).json()
    assert body == {"ok": True}
    assert len(server.requests) == 3
    assert len(slept) == 2 and all(0 <= s <= 0.05 for s in slept)
    assert failures() == 0  # the call succeeded in the end


def test_non_idempotent_calls_are_not_retried_on_5xx(config: ProviderConfig) -> None:
    policy, slept = recording_policy()
    with LoopbackServer(Sequence(Reply(500))) as server, pytest.raises(ProviderUnavailable, match="answered 500"):
        ProviderHTTP(config, base_url=server.url(), policy=policy).request("POST", "/x", idempotent=False)
    assert len(server.requests) == 1
    assert slept == []
    assert failures() == 1


def test_429_is_retried_after_the_retry_after_delay_even_for_posts(config: ProviderConfig) -> None:
    policy, slept = recording_policy()
    with LoopbackServer(Sequence(Reply(429, headers={"Retry-After": "2"}))) as server:
        http = ProviderHTTP(config, base_url=server.url(), policy=policy)
        assert http.request("POST", "/x", idempotent=False).json() == {"ok": True}
    assert slept == [2.0]
    assert len(server.requests) == 2


def test_a_retry_after_longer_than_we_wait_is_reported_not_slept(config: ProviderConfig) -> None:
    policy, slept = recording_policy()
    server = LoopbackServer(Sequence(Reply(429, headers={"Retry-After": "3600"})))
    with server, pytest.raises(ProviderRateLimited) as caught:
        ProviderHTTP(config, base_url=server.url(), policy=policy).request("GET", "/x", idempotent=True)
    assert caught.value.retry_after == 3600
    assert slept == []
    assert failures() == 0


def test_retries_give_up_after_the_configured_count(config: ProviderConfig) -> None:
    policy, slept = recording_policy(retries=2)
    with LoopbackServer(lambda r: Reply(503)) as server, pytest.raises(ProviderUnavailable):
        ProviderHTTP(config, base_url=server.url(), policy=policy).request("GET", "/x", idempotent=True)
    assert len(server.requests) == 3
    assert len(slept) == 2


def test_connection_refused_is_retried_then_reported(config: ProviderConfig) -> None:
    policy, slept = recording_policy(retries=1)
    with pytest.raises(ProviderUnavailable, match="cannot connect"):
        ProviderHTTP(config, base_url=f"http://127.0.0.1:{free_port()}", policy=policy).request(
            "POST", "/x", idempotent=False
        )
    assert len(slept) == 1  # nothing was sent, so even a POST is retried
    assert failures() == 1


def test_a_4xx_is_the_callers_problem_and_never_retried(config: ProviderConfig) -> None:
    policy, slept = recording_policy()
    server = LoopbackServer(lambda r: Reply(422, body={"detail": "bad input"}))
    with server, pytest.raises(ProviderInputError, match="bad input") as caught:
        ProviderHTTP(config, base_url=server.url(), policy=policy).request("GET", "/x", idempotent=True)
    assert caught.value.status_code == 422
    assert len(server.requests) == 1 and slept == []
    assert failures() == 0


# --- Pure rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "host", "port", "bypass"),
    [
        ("example.com", "example.com", 443, True),
        ("example.com", "api.example.com", 443, True),
        (".example.com", "api.example.com", 443, True),
        ("example.com", "badexample.com", 443, False),
        ("10.0.0.0/8", "10.2.3.4", 80, True),
        ("10.0.0.0/8", "11.2.3.4", 80, False),
        ("::1", "[::1]", 80, True),
        ("example.com:8443", "example.com", 8443, True),
        ("example.com:8443", "example.com", 443, False),
        ("*", "anything.test", 80, True),
        ("", "example.com", 443, False),
    ],
)
def test_no_proxy_bypasses_the_proxy_exactly_for_the_hosts_and_ports_it_names(
    rules: str, host: str, port: int, bypass: bool
) -> None:
    assert NoProxy(rules).matches(host, port) is bypass


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
