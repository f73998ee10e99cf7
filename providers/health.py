"""Health components of this app (listed in settings.HEALTH_CHECKS / PROVIDER_HEALTH_CHECKS)."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import DatabaseError

from cloudops.health import Component, elapsed_ms, guarded
from providers.circuit import circuit_snapshot
from providers.config import provider_config_get, provider_config_list
from providers.credit import with_credit
from providers.registry import get_provider, provider_names


def required_secrets() -> list[str]:
    """Secrets the enabled providers need: REPLICATE_API_TOKEN only while replicate is enabled."""
    if "replicate" not in provider_names():
        return []
    try:
        enabled = provider_config_get("replicate").enabled
    except DatabaseError:
        # Before `migrate` (e.g. `secrets_check` on a new install): the provider's default.
        enabled = get_provider("replicate").enabled_by_default
    return ["REPLICATE_API_TOKEN"] if enabled else []


@guarded("circuit_breakers")
def check_circuit_breakers() -> Component:
    started = time.perf_counter()
    circuits = circuit_snapshot()
    latency = elapsed_ms(started)
    details = {c.provider: {"state": c.state, "failures_total": c.failures_total} for c in circuits}
    tripped = [c for c in circuits if c.state != "closed"]
    if not tripped:
        return Component("circuit_breakers", "healthy", "All provider circuits closed", latency, details=details)
    names = ", ".join(f"{c.provider} ({c.state.replace('_', '-')})" for c in tripped)
    return Component("circuit_breakers", "degraded", f"Circuit not closed: {names}", latency, details=details)


def _provider_check(name: str) -> Component | None:
    if name not in provider_names():
        return None
    config = provider_config_get(name)
    if not config.enabled:
        return None
    return with_credit(get_provider(name).health(provider_config=config), config)


@guarded("provider:local")
def check_local() -> Component | None:
    return _provider_check("local")


@guarded("provider:replicate")
def check_replicate() -> Component | None:
    return _provider_check("replicate")


@guarded("webhooks")
def check_webhook_signatures() -> Component:
    """Says which enabled providers accept unsigned webhooks (webhook_require_signature off):
    anyone who can reach the endpoint (and passes the allowlist) can then change their jobs."""
    started = time.perf_counter()
    unsigned = [c.name for c in provider_config_list() if c.enabled and not c.webhook_require_signature]
    latency = elapsed_ms(started)
    details = {"unsigned_accepted": unsigned}
    if unsigned:
        message = f"Unsigned webhooks accepted for: {', '.join(unsigned)} (webhook_require_signature=false)"
        return Component("webhooks", "degraded", message, latency, details=details)
    return Component("webhooks", "healthy", "Webhook signatures required", latency, details=details)


@guarded("channel_layer")
def check_channel_layer() -> Component:
    """A message through the channel layer and back (Redis when REDIS_URL is set): live events
    reach clients on other processes only while this works. Degraded, not unhealthy, when it
    fails or takes over REDIS_TIMEOUT: jobs, webhooks and scrapes go on without Redis (README:
    When Redis is down or hung), so the server stays in service."""
    from providers.events import channel_layer_roundtrip

    started = time.perf_counter()
    try:
        backend = channel_layer_roundtrip(timeout=settings.REDIS_TIMEOUT)
    except Exception as exc:  # a check reports, never raises
        latency = elapsed_ms(started)
        return Component(
            "channel_layer",
            "degraded",
            "Channel layer unavailable: live events do not reach other processes",
            latency,
            error=f"{type(exc).__name__}: {exc}",
        )
    latency = elapsed_ms(started)
    return Component("channel_layer", "healthy", f"{backend} channel layer round trip OK", latency)
