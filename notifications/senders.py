"""Sending one delivery: a signed webhook POST, a Slack message or an email.

HTTP goes through the project's outbound client (providers.http.build_client: proxy, CA
bundle and TLS settings), never follows a redirect, is bounded by
SIMPLETUNER_NOTIFICATIONS_TIMEOUT, and reads at most RESPONSE_CAP bytes of the answer. The
destination is checked against DNS before every send (notifications.destinations). What an
attempt records never holds a secret: no header, no Slack URL.
"""

from __future__ import annotations

import json
import smtplib
import time
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.utils import timezone

from cloudops.sealed import Unreadable
from cloudops.secrets import get_secret
from notifications.destinations import DestinationRefused, check_destination
from notifications.models import Channel, ChannelType, Delivery
from notifications.signing import signed_headers
from providers.http import build_client, parse_retry_after

RESPONSE_CAP = 4096
ERROR_CAP = 500


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    latency_ms: float = 0.0
    error: str = ""
    retry_after: float | None = None


def body_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


# A sealed value the server key no longer opens (cloudops.sealed): what the operator does about it.
UNREADABLE_SECRET = (
    "the channel's signing secret was sealed under another server key (SIMPLETUNER_SERVER_KEY changed): "
    "rotate the channel's secret"
)
UNREADABLE_SLACK_URL = (
    "the channel's Slack webhook URL was sealed under another server key (SIMPLETUNER_SERVER_KEY changed): "
    "enter it again"
)


def signing_secrets(channel: Channel) -> list[str]:
    """The current secret, and the previous one while its grace period lasts (and readable)."""
    keep_previous = (
        channel.previous_secret
        and not isinstance(channel.previous_secret, Unreadable)
        and channel.previous_secret_expires_at is not None
        and channel.previous_secret_expires_at > timezone.now()
    )
    return [channel.secret, channel.previous_secret] if keep_previous else [channel.secret]


def send(delivery: Delivery) -> Outcome:
    channel = delivery.channel
    started = time.perf_counter()
    if channel.channel_type == ChannelType.EMAIL:
        outcome = _send_email(channel, delivery)
    elif channel.channel_type == ChannelType.SLACK:
        if isinstance(channel.webhook_url, Unreadable):
            outcome = Outcome(ok=False, error=UNREADABLE_SLACK_URL)
        else:
            outcome = _post(channel.webhook_url, body_bytes(slack_message(delivery.payload)), {})
    elif isinstance(channel.secret, Unreadable):
        outcome = Outcome(ok=False, error=UNREADABLE_SECRET)
    else:
        body = body_bytes(delivery.payload)
        headers = signed_headers(signing_secrets(channel), delivery.msg_id, int(time.time()), body)
        outcome = _post(channel.url, body, headers)
    latency = round((time.perf_counter() - started) * 1000, 1)
    return Outcome(outcome.ok, outcome.status_code, latency, outcome.error[:ERROR_CAP], outcome.retry_after)


def _post(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    try:
        check_destination(url)
    except DestinationRefused as exc:
        return Outcome(ok=False, error=f"destination refused: {exc}")
    client = build_client(None, headers={"Content-Type": "application/json", **headers})
    client.timeout = httpx.Timeout(settings.SIMPLETUNER_NOTIFICATIONS_TIMEOUT)
    try:
        with client, client.stream("POST", url, content=body) as response:
            head = _read_capped(response)
    except httpx.HTTPError as exc:
        # The exception's text, never the URL (a Slack URL is a secret).
        return Outcome(ok=False, error=f"{type(exc).__name__}: {str(exc).replace(url, '<url>')}")
    return _judge(response, head)


def _read_capped(response: httpx.Response) -> bytes:
    head = b""
    for chunk in response.iter_raw():
        head += chunk
        if len(head) >= RESPONSE_CAP:
            break
    return head[:RESPONSE_CAP]


def _judge(response: httpx.Response, head: bytes) -> Outcome:
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(ok=True, status_code=status)
    text = head[:200].decode("utf-8", "replace").strip()
    error = f"answered {status}" + (": redirects are not followed" if 300 <= status < 400 else "")
    error += f": {text}" if text else ""
    retry_after = parse_retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None
    return Outcome(ok=False, status_code=status, error=error, retry_after=retry_after)


def _send_email(channel: Channel, delivery: Delivery) -> Outcome:
    if not settings.SIMPLETUNER_SMTP_HOST:
        return Outcome(ok=False, error="SIMPLETUNER_SMTP_HOST is not set")
    connection = get_connection(
        "django.core.mail.backends.smtp.EmailBackend",
        host=settings.SIMPLETUNER_SMTP_HOST,
        port=settings.SIMPLETUNER_SMTP_PORT,
        username=settings.SIMPLETUNER_SMTP_USER or None,
        password=get_secret("SIMPLETUNER_SMTP_PASSWORD") or None,
        use_tls=settings.SIMPLETUNER_SMTP_TLS,
        timeout=settings.SIMPLETUNER_NOTIFICATIONS_TIMEOUT,
    )
    subject, text = email_message(delivery.payload)
    message = EmailMessage(
        subject, text, settings.SIMPLETUNER_SMTP_FROM, list(channel.recipients), connection=connection
    )
    message.extra_headers = {"X-Cloudops-Event-Id": delivery.msg_id}
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as exc:
        return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}")
    return Outcome(ok=True)


# --- Formats ---------------------------------------------------------------------------------


def summary(payload: dict[str, Any]) -> str:
    """One line saying what happened, for Slack and email subjects."""
    data = payload.get("data") or {}
    event = payload.get("type", "")
    if "job_id" in data:
        name = data.get("name") or data["job_id"]
        line = f"{event}: job {name} ({data.get('provider', '')}) is {data.get('status', '')}"
        return line + (f", cost ${data['cost_usd']}" if data.get("cost_usd") not in (None, "", "0") else "")
    detail = data.get("message") or data.get("error") or data.get("provider") or ""
    return f"{event}: {detail}" if detail else event


def slack_message(payload: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message: the summary, and a link to the job when there is one."""
    text = summary(payload)
    link = ((payload.get("data") or {}).get("links") or {}).get("admin")
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}}]
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Open in cloudops>"}]})
    return {"text": text, "blocks": blocks}


def email_message(payload: dict[str, Any]) -> tuple[str, str]:
    text = summary(payload)
    body = f"{text}\n\n{json.dumps(payload, indent=2, ensure_ascii=False)}\n"
    return f"[cloudops] {text}"[:200], body
