"""Inbound webhooks: POST /api/webhooks/{provider}.

Order (SPEC 4): rate limit (middleware) -> IP allowlist -> body size -> signature -> JSON ->
replay check -> apply. Rejections by allowlist, size and signature are audited as
`webhook_rejected` with the IP, provider and reason, so `GET /api/audit?event_type=
webhook_rejected` shows them. Applying goes through providers.jobs (forward-only status,
capped logs, cost), which writes `job.status_changed` and publishes live events.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import events
from audit.services import Actor, audit_record
from cloudops.net import Network, ip_in_networks, parse_ip
from cloudops.structured_logging import LogContext, get_logger
from providers.jobs import job_apply_remote
from providers.models import Job, ProviderConfig, WebhookDelivery
from providers.webhook_payloads import WebhookPayload, parse_payload
from providers.webhook_signing import (
    TOLERANCE_SECONDS,
    SecretUnavailable,
    SignatureInvalid,
    has_signature_headers,
    verify_signature,
)

logger = get_logger("cloudops.providers.webhooks")

PRUNE_BATCH = 500


@dataclass
class WebhookOutcome:
    status_code: int
    body: dict[str, Any] = field(default_factory=dict)


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


def webhook_receive(
    *, provider_config: ProviderConfig, body: bytes, headers: dict[str, str], ip: str
) -> WebhookOutcome:
    """Verify, parse and apply one admitted delivery (headers keyed in lower case)."""
    provider = provider_config.name
    signed = has_signature_headers(headers)
    if provider_config.webhook_require_signature or signed:
        try:
            verify_signature(provider_config=provider_config, body=body, headers=headers)
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
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        return WebhookOutcome(400, {"detail": f"Invalid JSON body: {exc}"})
    if not isinstance(payload, dict):
        return WebhookOutcome(400, {"detail": "The webhook body must be a JSON object."})
    webhook_id = headers.get("webhook-id", "")[:255]
    return webhook_apply(
        provider_config=provider_config,
        payload=parse_payload(payload),
        webhook_id=webhook_id,
        expires_at=_replay_expiry(headers.get("webhook-timestamp", "")),
        signed=signed,
    )


def _replay_expiry(timestamp: str, now: datetime | None = None) -> datetime:
    """Remember an id until its timestamp can no longer pass the tolerance, plus a margin."""
    now = now or timezone.now()
    try:
        stamped = datetime.fromtimestamp(float(timestamp), tz=now.tzinfo)
    except (ValueError, OverflowError, OSError):
        stamped = now
    horizon = max(now, min(stamped, now + timedelta(seconds=TOLERANCE_SECONDS)))
    return horizon + timedelta(seconds=TOLERANCE_SECONDS + settings.SIMPLETUNER_WEBHOOK_REPLAY_MARGIN)


def _claim(provider: str, webhook_id: str, expires_at: datetime) -> bool:
    """Record the id inside the caller's transaction; False if another delivery holds it.

    Two racing deliveries of one id both reach the INSERT; the database's unique key makes
    the second wait for the first's transaction and then fail (or, on SQLite, the IMMEDIATE
    transactions run one after the other), so exactly one applies.
    """
    now = timezone.now()
    WebhookDelivery.objects.filter(provider=provider, webhook_id=webhook_id, expires_at__lt=now).delete()
    try:
        with transaction.atomic():
            WebhookDelivery.objects.create(provider=provider, webhook_id=webhook_id, expires_at=expires_at)
    except IntegrityError:
        return False
    return True


def webhook_prune(now: datetime | None = None) -> int:
    """Delete expired replay records, a batch at a time (called after each delivery)."""
    expired = WebhookDelivery.objects.filter(expires_at__lt=now or timezone.now())
    ids = list(expired.values_list("pk", flat=True)[:PRUNE_BATCH])
    return WebhookDelivery.objects.filter(pk__in=ids).delete()[0] if ids else 0


def _find_job(provider: str, payload: WebhookPayload) -> Job | None:
    jobs = Job.objects.filter(provider=provider)
    if payload.job_id:
        return jobs.filter(pk=payload.job_id).first()
    if payload.external_id:
        return jobs.filter(external_id=payload.external_id).order_by("-created_at").first()
    return None


def webhook_apply(
    *, provider_config: ProviderConfig, payload: WebhookPayload, webhook_id: str, expires_at: datetime, signed: bool
) -> WebhookOutcome:
    """Apply a verified payload once per webhook-id (deliveries without an id, possible only
    when signatures are not required, are applied every time)."""
    provider = provider_config.name
    with transaction.atomic():
        if webhook_id and not _claim(provider, webhook_id, expires_at):
            logger.info("duplicate webhook ignored", extra={"provider": provider, "webhook_id": webhook_id})
            return WebhookOutcome(200, {"status": "duplicate"})
        job = _find_job(provider, payload)
        if job is None:
            logger.info(
                "webhook for an unknown job ignored",
                extra={"provider": provider, "external_id": payload.external_id, "job_id": payload.job_id},
            )
            return WebhookOutcome(200, {"status": "ignored"})
        with LogContext(job_id=job.pk, provider=provider):
            updates = job_apply_webhook(job=job, payload=payload, provider_config=provider_config, signed=signed)
    webhook_prune()
    return WebhookOutcome(200, {"status": "received", "job_id": job.pk, "updates": updates})


# --- Applying to the job -------------------------------------------------------------------------------


def _snapshot(job: Job) -> dict[str, Any]:
    return {
        "status": job.status,
        "progress": job.progress,
        "output_url": job.output_url,
        "error": job.error[:500],
        "cost_usd": str(job.cost_usd),
        "run_seconds": job.run_seconds,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "completed_at": job.completed_at.isoformat() if job.completed_at else None,
        "logs_bytes": len(job.logs),
    }


def merged_progress(current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Progress moves forward only: a late event with a lower step changes nothing. Fields
    merge, so a checkpoint event keeps the step count. (Two deliveries for one job racing
    here may each drop the other's new fields until the next event: accepted, progress is
    advisory and every trainer event carries its full progress.)"""
    if not new:
        return current
    old_step, new_step = current.get("current"), new.get("current")
    if isinstance(old_step, int | float) and isinstance(new_step, int | float) and new_step < old_step:
        return current
    return {**current, **new}


def job_apply_webhook(
    *, job: Job, payload: WebhookPayload, provider_config: ProviderConfig, signed: bool
) -> dict[str, Any]:
    """Record the payload on the job; returns the fields that changed."""
    before = _snapshot(job)
    remote = payload.remote
    progress = merged_progress(job.progress, remote.progress)
    remote.progress = progress if progress != job.progress else {}
    source = f"webhook:{provider_config.name}" + ("" if signed else ":unsigned")
    job_apply_remote(job=job, remote=remote, source=source, provider_config=provider_config)
    job.refresh_from_db()
    after = _snapshot(job)
    return {key: value for key, value in after.items() if value != before[key]}
