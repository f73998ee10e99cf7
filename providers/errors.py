"""Errors of provider calls, classified by who has to act: the provider, the operator or the user.

Only `counts_for_circuit` errors (the provider failing: 5xx, unreachable, timeout) move the
circuit breaker; a rejected token, invalid input or a TLS/proxy misconfiguration does not.
"""

from __future__ import annotations


class ProviderError(Exception):
    """A provider call failed. `message` is safe to show to the caller (no secrets)."""

    counts_for_circuit = False
    http_status = 502

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status_code: int | None = None,
        retry_after: float | None = None,
        detail: object = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.retry_after = retry_after
        self.detail = detail


class ProviderConfigError(ProviderError):
    """The operator's configuration prevents the call (missing token, bad CA bundle path)."""

    http_status = 503


class ProviderAuthError(ProviderError):
    """The provider rejected our credentials (401/403)."""


class ProviderInputError(ProviderError):
    """The provider rejected the request's input (400/404/422): the caller must change it."""

    http_status = 400


class ProviderRateLimited(ProviderError):
    """429 after the retries we are allowed (or a Retry-After longer than we wait)."""

    http_status = 503


class ProviderTLSError(ProviderError):
    """Certificate verification failed: a CA bundle or ssl_verify setting is needed."""


class ProviderProxyError(ProviderError):
    """The configured proxy refused or could not be reached."""


class ProviderUnavailable(ProviderError):
    """The provider failed: 5xx, connection refused or reset."""

    counts_for_circuit = True


class ProviderTimeout(ProviderUnavailable):
    """No answer within the timeout."""

    http_status = 504


class CircuitOpenError(ProviderError):
    """The provider's circuit is open: the call was not attempted."""

    http_status = 503
