"""Receiving a delivery: who sent it, how big it is, whether it is signed, what it says.

`webhook_handle` is the one entry (the view calls it with the request's parts). Order: rate
limit (middleware, before this) -> provider known -> IP allowlist -> body size -> signature
-> JSON -> replay check and apply (providers.webhooks.apply). Rejections by allowlist, size
and signature are audited as `webhook_rejected` with the IP, provider and reason, so
`GET /api/audit?event_type=webhook_rejected` shows them.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable

from django.conf import settings

from audit.services import audit_record
from cloudops import audit_events as events
from cloudops import notify
from cloudops.auditing import Actor
from cloudops.jsonbody import InvalidJSON, parse_json
from cloudops.net import Network, ip_in_networks, parse_ip
from cloudops.structured_logging import get_logger
from providers.base import SecretUnavailable
from providers.config import UnknownProvider
from providers.config_cache import provider_config_cached
from providers.models import ProviderConfig
from providers.webhooks.apply import replay_expiry, webhook_apply
from providers.webhooks.outcome import WebhookOutcome
from providers.webhooks.payloads import WebhookPayload, parse_payload
from providers.webhooks.signing import SignatureInvalid, has_signature_headers, verify_signature

logger = get_logger("simpletuner.cloud.webhooks")

# Seconds of the window in which rejected deliveries make one `system.webhook_rejected` notification.
REJECTED_WINDOW = 600


def webhook_handle(
    *, provider: str, headers: dict[str, str], ip: str, announced_length: int | None, read: Callable[[int], bytes]
) -> WebhookOutcome:
    """Everything about one delivery to POST /api/webhooks/{provider} (headers keyed in lower
    case). `read(n)` reads at most n bytes of the body: it is called only once the source is
    admitted, for one byte more than the limit, so an oversized body is never read whole."""
    try:
        provider_config = provider_config_cached(provider)
    except UnknownProvider:
        return WebhookOutcome(404, {"detail": f"Unknown provider {provider!r}."})
    refused = webhook_admit(provider_config=provider_config, ip=ip)
    if refused is not None:
        return refused
    limit = settings.SIMPLETUNER_WEBHOOK_MAX_BYTES
    if announced_length is not None and announced_length > limit:
        return webhook_too_large(provider_config=provider_config, ip=ip)
    body = read(limit + 1)
    if len(body) > limit:
        return webhook_too_large(provider_config=provider_config, ip=ip)
    return webhook_receive(provider_config=provider_config, body=body, headers=headers, ip=ip)


# --- Source checks ---------------------------------------------------------------------------------


def _network(entry: str) -> Network | None:
    """An allowlist entry as a network; IPv4-mapped IPv6 entries become IPv4, like client IPs."""
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None
    mapped = network.network_address.ipv4_mapped if network.version == 6 else None
    if mapped is not None and network.prefixlen >= 96:
        return ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}", strict=False)
    return network


def allowlist_permits(allowed: list[str], ip: str) -> bool:
    """No allowlist (None or []) admits everyone; otherwise the IP must be in one entry.
    Fails closed: an unknown client address is outside every non-empty allowlist."""
    if not allowed:
        return True
    address = parse_ip(ip)
    networks = [net for net in (_network(str(entry)) for entry in allowed) if net is not None]
    return address is not None and ip_in_networks(address, networks)


def webhook_reject(
    *, provider: str, ip: str, reason: str, status_code: int, detail: str, message: str = ""
) -> WebhookOutcome:
    """Refuse a delivery: audit it (IP, provider, reason) and log it."""
    audit_record(
        event_type=events.WEBHOOK_REJECTED,
        actor=Actor(ip=ip),
        target_type="provider",
        target_id=provider,
        action="reject",
        details={"ip": ip, "provider": provider, "reason": reason, "message": message[:500]},
    )
    logger.warning(
        "webhook rejected", extra={"provider": provider, "client_ip": ip, "reason": reason, "detail": message}
    )
    # Announced once per provider and REJECTED_WINDOW: the first rejection of a burst says
    # one is happening; the audit trail and the dashboard count them all.
    window = int(time.time() // REJECTED_WINDOW)
    data = {"provider": provider, "ip": ip, "reason": reason, "window_seconds": REJECTED_WINDOW}
    notify.notify(notify.SYSTEM_WEBHOOK_REJECTED, data, dedup_key=f"webhook_rejected:{provider}:{window}")
    return WebhookOutcome(status_code, {"detail": detail})


def webhook_admit(*, provider_config: ProviderConfig, ip: str) -> WebhookOutcome | None:
    """The allowlist check, before the body is read; None when the source is admitted."""
    if allowlist_permits(provider_config.webhook_allowed_ips, ip):
        return None
    return webhook_reject(
        provider=provider_config.name,
        ip=ip,
        reason="ip_not_allowed",
        status_code=403,
        detail="IP address not in allowlist",
    )


def webhook_too_large(*, provider_config: ProviderConfig, ip: str) -> WebhookOutcome:
    limit = settings.SIMPLETUNER_WEBHOOK_MAX_BYTES
    return webhook_reject(
        provider=provider_config.name,
        ip=ip,
        reason="too_large",
        status_code=413,
        detail=f"Webhook body exceeds {limit} bytes (SIMPLETUNER_WEBHOOK_MAX_BYTES).",
    )


# --- Receive ---------------------------------------------------------------------------------------


def _read(body: bytes) -> tuple[WebhookPayload | None, str]:
    """The delivery's payload, or None and why it cannot be read."""
    try:
        data = parse_json(body)
    except InvalidJSON as exc:
        return None, f"Invalid JSON body: {exc}"
    if not isinstance(data, dict):
        return None, "The webhook body must be a JSON object."
    return parse_payload(data), ""


def _named_job(body: bytes) -> str:
    """The job a body outside the JSON limits names, read leniently and only to pick the
    secret its signature is checked with (so its sender hears what is wrong with it)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    return parse_payload(data).job_id if isinstance(data, dict) else ""


def webhook_receive(
    *, provider_config: ProviderConfig, body: bytes, headers: dict[str, str], ip: str
) -> WebhookOutcome:
    """Verify, parse and apply one admitted delivery (headers keyed in lower case).

    The body is parsed (within the JSON limits) before the signature is checked because a
    local job's secret is the one of the job the delivery names; a body that cannot be read
    still fails the signature first (401), and only a signed one is told it is malformed."""
    provider = provider_config.name
    signed = has_signature_headers(headers)
    payload, unreadable = _read(body)
    if provider_config.webhook_require_signature or signed:
        try:
            job_id = payload.job_id if payload is not None else _named_job(body)
            verify_signature(provider_config=provider_config, body=body, headers=headers, job_id=job_id)
        except SignatureInvalid as exc:
            detail = f"Invalid webhook signature: {exc}"
            return webhook_reject(
                provider=provider, ip=ip, reason="signature", status_code=401, detail=detail, message=str(exc)
            )
        except SecretUnavailable as exc:
            logger.error("cannot verify webhook signatures", extra={"provider": provider, "error": str(exc)})
            detail = "The webhook signing secret is unavailable; retry later."
            return webhook_reject(
                provider=provider, ip=ip, reason="secret_unavailable", status_code=503, detail=detail, message=str(exc)
            )
    if payload is None:
        return WebhookOutcome(400, {"detail": unreadable})
    return webhook_apply(
        provider_config=provider_config,
        payload=payload,
        webhook_id=headers.get("webhook-id", "")[:255],
        expires_at=replay_expiry(headers.get("webhook-timestamp", "")),
        signed=signed,
    )
