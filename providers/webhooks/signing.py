"""Standard Webhooks signatures (https://www.standardwebhooks.com/), as Replicate signs.

Headers `webhook-id`, `webhook-timestamp` and `webhook-signature` (`v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`, several space-separated); secret `whsec_<base64>`; the timestamp must
be within TOLERANCE_SECONDS (5 minutes) of now, either way.

Each outcome is its own exception, so what to do next never depends on a message's text:
SignatureMissing (a header is absent), SignatureExpired (the timestamp is outside the
tolerance, checked here before the HMAC), SignatureMismatch (no listed signature matches the
secret), and SecretUnavailable (the secret cannot be had now: not the sender's fault). Only
a mismatch with a secret that came from the provider's API (it may have been rotated) is
worth fetching the secret again, and that at most once per SIMPLETUNER_WEBHOOK_SECRET_REFETCH
seconds across processes (through the cache), so forged deliveries cannot hammer the
provider. The HMAC comparison is the `standardwebhooks` package's.

The secret is the provider's to say (Provider.signing_secret): Replicate's account secret,
or the secret of the local job the delivery names.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping

from django.conf import settings
from django.core.cache import cache
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook, WebhookVerificationError

from providers.base import DeliveryUnverifiable, SecretUnavailable, SigningSecret
from providers.models import ProviderConfig
from providers.registry import get_provider

# The Standard Webhooks tolerance: 5 minutes either way.
TOLERANCE_SECONDS = 300
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_REFETCH_KEY = "cloudops:webhook-secret-refetch:{provider}"


class SignatureInvalid(Exception):
    """The delivery is not validly signed (the sender's fault: 401)."""


class SignatureMissing(SignatureInvalid):
    """A signature header is absent."""


class SignatureExpired(SignatureInvalid):
    """The timestamp is outside the tolerance (a replay, or a clock far off)."""


class SignatureMismatch(SignatureInvalid):
    """No listed signature matches the secret."""


def _usable_signatures(header: str) -> str:
    """The well-formed entries of webhook-signature. The package gives up on the first
    malformed entry; the spec lets a sender list several, so bad ones are skipped here."""
    usable = []
    for entry in header.split(" "):
        version, comma, value = entry.partition(",")
        if not comma or "," in value:
            continue
        if version == "v1":
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                continue
        usable.append(entry)
    return " ".join(usable)


def check_timestamp(stamp: str, *, now: float | None = None) -> None:
    """SignatureExpired unless `stamp` (Unix seconds) is within the tolerance of now."""
    try:
        sent = int(stamp)
    except ValueError:
        raise SignatureExpired("Invalid Signature Headers: the timestamp is not a number") from None
    drift = (time.time() if now is None else now) - sent
    if drift > TOLERANCE_SECONDS:
        raise SignatureExpired("Message timestamp too old")
    if drift < -TOLERANCE_SECONDS:
        raise SignatureExpired("Message timestamp too new")


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """Raise one of the exceptions above unless `body` is signed with `secret`."""
    signed = {name: headers.get(name, "") for name in SIGNATURE_HEADERS}
    if not all(signed.values()):
        raise SignatureMissing("Missing required headers")
    check_timestamp(signed["webhook-timestamp"])
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureMismatch("the body is not UTF-8 text") from None
    try:
        webhook = Webhook(secret)
    except (binascii.Error, ValueError, RuntimeError, EmptyWebhookSecretError) as exc:
        raise SecretUnavailable(f"the configured webhook secret is not a whsec_<base64> value ({type(exc).__name__})")
    signed["webhook-signature"] = _usable_signatures(signed["webhook-signature"])
    try:
        webhook.verify(text, signed, json_parse=False)
    except WebhookVerificationError:
        # The headers and the timestamp were checked above: what is left is the HMAC.
        raise SignatureMismatch("No matching signature found") from None


def _secret(provider_config: ProviderConfig, job_id: str, *, refresh: bool) -> SigningSecret:
    try:
        return get_provider(provider_config.name).signing_secret(
            provider_config=provider_config, job_id=job_id, refresh=refresh
        )
    except DeliveryUnverifiable as exc:
        raise SignatureMismatch(str(exc)) from None


def verify_signature(
    *, provider_config: ProviderConfig, body: bytes, headers: Mapping[str, str], job_id: str = ""
) -> None:
    """Raise SignatureInvalid (one of its kinds) or SecretUnavailable unless the delivery is
    validly signed (`job_id`: the job the delivery names, which picks a local job's secret).

    A mismatch with a secret fetched from the provider triggers one re-fetch (rotation);
    the re-fetch itself is limited across processes through the cache.
    """
    secret = _secret(provider_config, job_id, refresh=False)
    try:
        verify(secret.value, body, headers)
    except SignatureMismatch:
        if not secret.refetchable:
            raise
        window = settings.SIMPLETUNER_WEBHOOK_SECRET_REFETCH
        if not cache.add(_REFETCH_KEY.format(provider=provider_config.name), 1, window):
            raise
        fresh = _secret(provider_config, job_id, refresh=True)
        if fresh.value == secret.value:
            raise
        verify(fresh.value, body, headers)


def has_signature_headers(headers: Mapping[str, str]) -> bool:
    return any(headers.get(name) for name in SIGNATURE_HEADERS)
