"""Setup hints of this app (listed in settings.HINT_SOURCES; see cloudops/hints.py).

Only enabled providers count: a provider that is off needs nothing yet.
"""

from __future__ import annotations

from django.conf import settings

from cloudops import secrets
from cloudops.hints import Hint
from providers.config import provider_config_list
from providers.registry import get_provider
from providers.replicate import TOKEN_KEY as REPLICATE_TOKEN_KEY

# The secret each provider cannot work without.
PROVIDER_TOKENS = {"replicate": REPLICATE_TOKEN_KEY}


def public_url_hints() -> list[Hint]:
    """Jobs that run elsewhere get this server's URL for their webhooks and uploads: without
    SIMPLETUNER_PUBLIC_URL (or the provider's s3_public_url) they get the local one."""
    if settings.SIMPLETUNER_PUBLIC_URL:
        return []
    names = [
        c.name for c in provider_config_list() if c.enabled and get_provider(c.name).remote and not c.s3_public_url
    ]
    if not names:
        return []
    message = (
        f"No public URL is set (SIMPLETUNER_PUBLIC_URL): jobs on {', '.join(names)} cannot reach this "
        "server, so their status webhooks and output uploads never arrive."
    )
    return [Hint("public_url_missing", "warning", message, "public_url_missing")]


def provider_token_hints() -> list[Hint]:
    """An enabled provider whose token no secret source supplies: its jobs fail to submit."""
    hints = []
    for config in provider_config_list():
        key = PROVIDER_TOKENS.get(config.name)
        if config.enabled and key and secrets.lookup(key).source is None:
            message = f"The {config.name} provider is enabled but {key} is not set: its jobs cannot be submitted."
            hints.append(Hint(f"provider_token_missing:{config.name}", "warning", message, "provider_token_missing"))
    return hints


def webhook_signature_hints() -> list[Hint]:
    """An enabled provider that accepts unsigned webhooks (as health's `webhooks` component says)."""
    return [
        Hint(
            f"webhook_signature_off:{c.name}",
            "warning",
            f"Unsigned webhooks are accepted for {c.name} (webhook_require_signature is off): anyone who can "
            "reach the webhook endpoint can change its jobs.",
            "webhook_signature_off",
        )
        for c in provider_config_list()
        if c.enabled and not c.webhook_require_signature
    ]
