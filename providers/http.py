"""Outbound HTTP to providers: the one client factory and the one request loop.

Precedence, per setting: the provider's own value (admin / API) wins over the environment.
- proxy: provider `proxy_url` (every scheme), else HTTPS_PROXY / HTTP_PROXY by URL scheme;
  hosts in NO_PROXY (names, .domains, IPs, CIDRs, `*`) always connect directly.
- TLS: provider `ssl_verify`, else SIMPLETUNER_SSL_VERIFY; provider `ssl_ca_bundle`, else
  SIMPLETUNER_CA_BUNDLE, else the bundled Mozilla roots (certifi). A CA bundle replaces the
  default roots (like curl --cacert), so a corporate bundle must include public roots too.
- timeout: provider `http_timeout`, else SIMPLETUNER_HTTP_TIMEOUT (seconds, per operation).
A client is built per operation, so a configuration change applies to the next call.
"""

from __future__ import annotations

import email.utils
import functools
import ipaddress
import os
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import certifi
import httpx
from django.conf import settings

import cloudops
from cloudops.structured_logging import get_correlation_id, get_logger
from providers import circuit
from providers.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderInputError,
    ProviderProxyError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderTLSError,
    ProviderUnavailable,
)
from providers.models import ProviderConfig

logger = get_logger("simpletuner.cloud.providers.http")


@dataclass(frozen=True)
class NetworkSettings:
    ssl_verify: bool
    ca_bundle: str
    proxy_url: str
    https_proxy: str
    http_proxy: str
    no_proxy: str
    timeout: float

    def describe(self) -> dict[str, Any]:
        """The effective values, proxy credentials masked (for the API and admin)."""
        return {
            "ssl_verify": self.ssl_verify,
            "ssl_ca_bundle": self.ca_bundle,
            "proxy_url": redact_url(self.proxy_url or self.https_proxy),
            "no_proxy": self.no_proxy,
            "http_timeout": self.timeout,
        }


def network_settings(provider_config: ProviderConfig | None) -> NetworkSettings:
    pc = provider_config
    return NetworkSettings(
        ssl_verify=pc.ssl_verify if pc is not None and pc.ssl_verify is not None else settings.SIMPLETUNER_SSL_VERIFY,
        ca_bundle=(pc.ssl_ca_bundle if pc is not None else "") or settings.SIMPLETUNER_CA_BUNDLE,
        proxy_url=pc.proxy_url if pc is not None else "",
        https_proxy=settings.OUTBOUND_HTTPS_PROXY,
        http_proxy=settings.OUTBOUND_HTTP_PROXY,
        no_proxy=settings.OUTBOUND_NO_PROXY,
        timeout=pc.http_timeout if pc is not None and pc.http_timeout else settings.SIMPLETUNER_HTTP_TIMEOUT,
    )


# What stands for a password wherever a URL is shown (API, admin, audit, errors).
REDACTED_PASSWORD = "***"


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***` (proxy URLs may carry credentials)."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}:{REDACTED_PASSWORD}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class NoProxy:
    """NO_PROXY rules as curl reads them: `*`, host names (suffix match on a label
    boundary, with or without a leading dot), IP addresses and CIDR networks, each optionally
    with `:port`."""

    def __init__(self, value: str) -> None:
        self.everything = False
        self.names: list[tuple[str, int | None]] = []
        self.networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int | None]] = []
        for raw in (part.strip().lower() for part in value.split(",")):
            if raw:
                self._add(raw)

    def _add(self, entry: str) -> None:
        if entry == "*":
            self.everything = True
            return
        host, port = entry, None
        if entry.count(":") == 1 and "/" not in entry.split(":", 1)[1]:
            host, port_text = entry.split(":", 1)
            port = int(port_text) if port_text.isdigit() else None
        host = host.strip("[]")
        try:
            self.networks.append((ipaddress.ip_network(host, strict=False), port))
        except ValueError:
            self.names.append((host.lstrip("."), port))

    def matches(self, host: str, port: int | None) -> bool:
        if self.everything:
            return True
        host = host.lower().strip("[]")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return any(
                (host == name or host.endswith("." + name)) and (want is None or want == port)
                for name, want in self.names
            )
        return any(
            address.version == net.version and address in net and (want is None or want == port)
            for net, want in self.networks
        )


class RoutingTransport(httpx.BaseTransport):
    """Sends each request direct or through the proxy its scheme and host call for."""

    def __init__(self, *, network: NetworkSettings, verify: ssl.SSLContext | bool) -> None:
        self.no_proxy = NoProxy(network.no_proxy)
        self.direct = httpx.HTTPTransport(verify=verify)
        self.proxies: dict[str, str] = {
            "https": network.proxy_url or network.https_proxy,
            "http": network.proxy_url or network.http_proxy,
        }
        self._proxied = {
            url: httpx.HTTPTransport(verify=verify, proxy=url) for url in set(self.proxies.values()) if url
        }

    def proxy_for(self, url: httpx.URL) -> str:
        if self.no_proxy.matches(url.host, url.port or (443 if url.scheme == "https" else 80)):
            return ""
        return self.proxies.get(url.scheme, "")

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        proxy = self.proxy_for(request.url)
        transport = self._proxied[proxy] if proxy else self.direct
        return transport.handle_request(request)

    def close(self) -> None:
        self.direct.close()
        for transport in self._proxied.values():
            transport.close()


def _ssl_context(network: NetworkSettings) -> ssl.SSLContext | bool:
    """The verifying context for this configuration, built once and shared by every call:
    loading a CA file costs ~20 ms of CPU, which each provider call used to pay per transport.
    A bundle replaced in place is reloaded (its mtime is part of the cache key)."""
    if not network.ssl_verify:
        return False
    if not network.ca_bundle and os.environ.get("SSL_CERT_DIR") and not os.environ.get("SSL_CERT_FILE"):
        return True  # a CA directory: httpx loads it (hashed directories load lazily anyway)
    cafile = str(network.ca_bundle) if network.ca_bundle else _default_cafile()
    try:
        return _verifying_context(cafile, os.stat(cafile).st_mtime_ns)
    except (OSError, ssl.SSLError) as exc:
        raise ProviderTLSError(f"cannot load CA bundle {cafile}: {exc}") from exc


def _default_cafile() -> str:
    # What httpx uses for verify=True: SSL_CERT_FILE when set, else certifi's bundle.
    return os.environ.get("SSL_CERT_FILE") or certifi.where()


@functools.lru_cache(maxsize=32)
def _verifying_context(cafile: str, mtime_ns: int) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


def build_client(
    provider_config: ProviderConfig | None, *, base_url: str = "", headers: dict[str, str] | None = None
) -> httpx.Client:
    """The only way to create an HTTP client for provider calls."""
    return _client_and_transport(provider_config, base_url=base_url, headers=headers)[0]


def _client_and_transport(
    provider_config: ProviderConfig | None, *, base_url: str, headers: dict[str, str] | None
) -> tuple[httpx.Client, RoutingTransport]:
    network = network_settings(provider_config)
    transport = RoutingTransport(network=network, verify=_ssl_context(network))
    base_headers = {"User-Agent": f"cloudops/{cloudops.__version__}", **(headers or {})}
    client = httpx.Client(
        base_url=base_url,
        transport=transport,
        timeout=network.timeout,
        headers=base_headers,
        trust_env=False,
        follow_redirects=False,
    )
    return client, transport


@dataclass
class RetryPolicy:
    retries: int
    backoff: float
    backoff_max: float
    retry_after_max: float
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        return cls(
            retries=settings.SIMPLETUNER_HTTP_RETRIES,
            backoff=settings.SIMPLETUNER_HTTP_BACKOFF,
            backoff_max=settings.SIMPLETUNER_HTTP_BACKOFF_MAX,
            retry_after_max=settings.SIMPLETUNER_HTTP_RETRY_AFTER_MAX,
        )

    def backoff_delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter (attempt 0 is the first retry)."""
        return random.uniform(0, min(self.backoff_max, self.backoff * (2**attempt)))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class _Retry(Exception):
    """Internal: this attempt may be retried after `delay` (None: backoff)."""

    def __init__(self, error: ProviderError, delay: float | None = None) -> None:
        self.error = error
        self.delay = delay


class ProviderHTTP:
    """Calls to one provider: the factory's client, the request's correlation id, retries
    of idempotent calls and the provider's circuit breaker.

    Non-idempotent calls (creating a prediction) are retried only when the provider cannot
    have acted on them: 429, and connection failures before the request was sent.
    """

    def __init__(
        self,
        provider_config: ProviderConfig,
        *,
        base_url: str,
        headers: dict[str, str] | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.provider_config = provider_config
        self.provider = provider_config.name
        self.base_url = base_url
        self.headers = headers or {}
        self.policy = policy or RetryPolicy.from_settings()

    def request(
        self, method: str, path: str, *, idempotent: bool, expected: tuple[int, ...] = (200, 201), **kwargs: Any
    ) -> httpx.Response:
        probe = circuit.circuit_before_call(self.provider)
        # A half-open probe is one attempt: it exists to find out, not to insist.
        attempts = 1 if probe else 1 + self.policy.retries
        try:
            response = self._with_retries(
                method, path, idempotent=idempotent, attempts=attempts, expected=expected, **kwargs
            )
        except ProviderError as exc:
            if exc.counts_for_circuit:
                circuit.circuit_record_failure(self.provider, probe=probe, error=exc.message)
            elif isinstance(exc, ProviderTLSError | ProviderProxyError):
                if probe:
                    circuit.circuit_release_probe(self.provider)
            else:
                circuit.circuit_record_success(self.provider, probe=probe)
            raise
        circuit.circuit_record_success(self.provider, probe=probe)
        return response

    def _with_retries(
        self, method: str, path: str, *, idempotent: bool, attempts: int, expected: tuple[int, ...], **kwargs: Any
    ) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        cid = get_correlation_id()
        if cid:
            headers["X-Request-ID"] = cid
        client, transport = _client_and_transport(self.provider_config, base_url=self.base_url, headers=headers)
        with client:
            for attempt in range(attempts):
                _rewind(kwargs)
                request = client.build_request(method, path, **kwargs)
                proxied = bool(transport.proxy_for(request.url))
                try:
                    return self._attempt(client, request, idempotent=idempotent, expected=expected, proxied=proxied)
                except _Retry as retry:
                    if attempt + 1 >= attempts:
                        raise retry.error from None
                    delay = retry.delay if retry.delay is not None else self.policy.backoff_delay(attempt)
                    logger.warning(
                        "provider call failed, retrying",
                        extra={
                            "provider": self.provider,
                            "method": method,
                            "path": path,
                            "attempt": attempt + 1,
                            "retry_in_s": round(delay, 3),
                            "error": retry.error.message,
                        },
                    )
                    self.policy.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(
        self,
        client: httpx.Client,
        request: httpx.Request,
        *,
        idempotent: bool,
        expected: tuple[int, ...],
        proxied: bool,
    ) -> httpx.Response:
        try:
            response = client.send(request)
        except httpx.TimeoutException as exc:
            error: ProviderError = ProviderTimeout(
                f"{self.provider} did not answer within the timeout ({type(exc).__name__})", provider=self.provider
            )
            if isinstance(exc, httpx.ConnectTimeout) or idempotent:
                raise _Retry(error) from exc
            raise error from exc
        except httpx.ProxyError as exc:
            raise ProviderProxyError(
                f"the proxy refused the connection to {self.provider}: {exc}", provider=self.provider
            ) from exc
        except httpx.ConnectError as exc:
            raise self._connect_error(exc, proxied=proxied) from exc
        except httpx.TransportError as exc:
            error = ProviderUnavailable(
                f"{self.provider} connection failed: {type(exc).__name__}", provider=self.provider
            )
            if idempotent:
                raise _Retry(error) from exc
            raise error from exc
        return self._check(response, idempotent=idempotent, expected=expected)

    def _connect_error(self, exc: httpx.ConnectError, *, proxied: bool) -> Exception:
        text = str(exc)
        if isinstance(exc.__context__, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
            return ProviderTLSError(
                f"TLS certificate of {self.provider} not trusted ({text}); set ssl_ca_bundle or SIMPLETUNER_CA_BUNDLE",
                provider=self.provider,
            )
        if proxied:
            return ProviderProxyError(
                f"cannot connect to the proxy for {self.provider}: {text}", provider=self.provider
            )
        # Nothing was sent, so retrying is safe even for non-idempotent calls.
        return _Retry(ProviderUnavailable(f"cannot connect to {self.provider}: {text}", provider=self.provider))

    def _check(self, response: httpx.Response, *, idempotent: bool, expected: tuple[int, ...]) -> httpx.Response:
        status = response.status_code
        if status in expected:
            return response
        detail = _body(response)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            error: ProviderError = ProviderRateLimited(
                f"{self.provider} rate limit reached (429)",
                provider=self.provider,
                status_code=429,
                retry_after=retry_after,
                detail=detail,
            )
            if retry_after is not None and retry_after > self.policy.retry_after_max:
                raise error
            raise _Retry(error, delay=retry_after)
        if status >= 500:
            error = ProviderUnavailable(
                f"{self.provider} answered {status}", provider=self.provider, status_code=status, detail=detail
            )
            if idempotent:
                raise _Retry(error)
            raise error
        if status in (401, 403):
            raise ProviderAuthError(
                f"{self.provider} rejected the API token ({status})",
                provider=self.provider,
                status_code=status,
                detail=detail,
            )
        raise ProviderInputError(
            f"{self.provider} rejected the request ({status}): {_summary(detail)}",
            provider=self.provider,
            status_code=status,
            detail=detail,
        )


def _body(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return response.text[:1000]


def _summary(detail: object) -> str:
    if isinstance(detail, dict):
        return str(detail.get("detail") or detail.get("title") or detail)[:500]
    return str(detail)[:500]


def _rewind(kwargs: dict[str, Any]) -> None:
    """Seek uploaded files back to the start, so a retried upload sends the whole file."""
    for value in (kwargs.get("files") or {}).values():
        handle = value[1] if isinstance(value, tuple) else value
        if hasattr(handle, "seek"):
            handle.seek(0)
