"""Standard Webhooks signatures (https://www.standardwebhooks.com/), as Replicate signs.

Headers `webhook-id`, `webhook-timestamp` and `webhook-signature` (`v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`, several space-separated); secret `whsec_<base64>`; the timestamp must
be within 5 minutes of now, either way. Verification itself is the `standardwebhooks`
package's; this module finds the secret and turns the package's outcomes into ours.

Secrets by provider:
- `replicate`: REPLICATE_WEBHOOK_SECRET from the secrets chain; else the account's secret from
  Replicate's API (`GET /v1/webhooks/default/secret`), kept in the Django cache (Redis, so
  shared by every process, when REDIS_URL is set) and fetched again once on a mismatch, so a
  rotated secret is picked up. Re-fetches are limited to one per
  SIMPLETUNER_WEBHOOK_SECRET_REFETCH seconds, so forged deliveries cannot hammer Replicate.
- `local`: the server's own secret (providers.credentials.local_webhook_secret), handed to
  local jobs in SIMPLETUNER_WEBHOOK_SECRET.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from django.conf import settings
from django.core.cache import cache
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook, WebhookVerificationError

from cloudops.secrets import get_secret
from cloudops.structured_logging import get_logger
from providers.credentials import local_webhook_secret
from providers.errors import ProviderError
from providers.models import ProviderConfig

logger = get_logger("cloudops.providers.webhooks")

# Fixed by the standardwebhooks package (and the Standard Webhooks spec): 5 minutes.
TOLERANCE_SECONDS = 300
REPLICATE_SECRET_KEY = "REPLICATE_WEBHOOK_SECRET"
_CACHE_KEY = "cloudops:webhook-secret:{provider}"
_REFETCH_KEY = "cloudops:webhook-secret-refetch:{provider}"
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class SignatureInvalid(Exception):
    """The delivery is not signed with the provider's secret (or is outside the tolerance)."""


class SecretUnavailable(Exception):
    """We cannot get the secret to check with (e.g. Replicate's API is down): not the sender's fault."""


def _replicate_secret(provider_config: ProviderConfig, *, refresh: bool) -> tuple[str, bool]:
    configured = get_secret(REPLICATE_SECRET_KEY)
    if configured:
        return configured, False
    key = _CACHE_KEY.format(provider=provider_config.name)
    cached = None if refresh else cache.get(key)
    if cached:
        return cached, True
    from providers.replicate import ReplicateProvider

    try:
        secret = ReplicateProvider().webhook_secret(provider_config)
    except (ProviderError, KeyError, TypeError, ValueError) as exc:
        message = exc.message if isinstance(exc, ProviderError) else "unexpected answer"
        raise SecretUnavailable(f"cannot fetch Replicate's webhook secret: {message}") from exc
    if not isinstance(secret, str) or not secret:
        raise SecretUnavailable("Replicate returned an empty webhook secret")
    cache.set(key, secret, settings.SIMPLETUNER_WEBHOOK_SECRET_TTL)
    logger.info("fetched the webhook signing secret from Replicate", extra={"refresh": refresh})
    return secret, True


def signing_secret(provider_config: ProviderConfig, *, refresh: bool = False) -> tuple[str, bool]:
    """The provider's secret, and whether it came from the provider's API (so may be re-fetched)."""
    if provider_config.name == "local":
        return local_webhook_secret(), False
    if provider_config.name == "replicate":
        return _replicate_secret(provider_config, refresh=refresh)
    raise SecretUnavailable(f"no webhook signing secret is known for provider {provider_config.name}")


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


def _verify(secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureInvalid("the body is not UTF-8 text") from None
    try:
        webhook = Webhook(secret)
    except (binascii.Error, ValueError, RuntimeError, EmptyWebhookSecretError) as exc:
        raise SecretUnavailable(f"the configured webhook secret is not a whsec_<base64> value ({type(exc).__name__})")
    signed = {name: headers.get(name, "") for name in SIGNATURE_HEADERS}
    signed["webhook-signature"] = _usable_signatures(signed["webhook-signature"])
    try:
        webhook.verify(text, signed, json_parse=False)
    except WebhookVerificationError as exc:
        raise SignatureInvalid(str(exc)) from None


def verify_signature(*, provider_config: ProviderConfig, body: bytes, headers: Mapping[str, str]) -> None:
    """Raise SignatureInvalid or SecretUnavailable unless the delivery is validly signed.

    A mismatch with a secret fetched from the provider triggers one re-fetch (rotation);
    the re-fetch itself is rate-limited across processes through the cache.
    """
    secret, refetchable = signing_secret(provider_config)
    try:
        _verify(secret, body, headers)
    except SignatureInvalid as exc:
        if str(exc) != "No matching signature found" or not refetchable:
            raise
        if not cache.add(
            _REFETCH_KEY.format(provider=provider_config.name), 1, settings.SIMPLETUNER_WEBHOOK_SECRET_REFETCH
        ):
            raise
        fresh, _ = signing_secret(provider_config, refresh=True)
        if fresh == secret:
            raise
        _verify(fresh, body, headers)


def has_signature_headers(headers: Mapping[str, str]) -> bool:
    return any(headers.get(name) for name in SIGNATURE_HEADERS)
