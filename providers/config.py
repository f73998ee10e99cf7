"""Provider configuration: validation and the services the API, admin and commands share.

Validators raise ValueError with a message naming the problem; the API serializer and the
admin form turn it into a field error. PUT and PATCH both change only the fields sent (the
guide's curl examples send one group of fields at a time).
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.services import audit_record
from cloudops import audit_events as events
from cloudops.auditing import Actor
from providers.http import REDACTED_PASSWORD, redact_url
from providers.models import CostLimitAction, CostLimitPeriod, ProviderConfig
from providers.registry import get_provider, provider_names

MAX_ALLOWED_IPS = 1000
MAX_HARDWARE_ENTRIES = 100
MAX_TIMEOUT_SECONDS = 600.0
_HARDWARE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class UnknownProvider(LookupError):
    pass


# --- Field validators --------------------------------------------------------------------------


def validate_allowed_ips(value: list[str]) -> list[str]:
    """Each entry an IPv4/IPv6 address or CIDR; stored normalised (`1.2.3.4` -> `1.2.3.4/32`)."""
    if len(value) > MAX_ALLOWED_IPS:
        raise ValueError(f"at most {MAX_ALLOWED_IPS} entries")
    networks = []
    for item in value:
        try:
            networks.append(str(ipaddress.ip_network(item.strip(), strict=False)))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8, 2001:db8::/32)")
    return list(dict.fromkeys(networks))


def validate_http_url(value: str, *, allow_path: bool) -> str:
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{redact_url(value)!r} is not an absolute http(s) URL")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"{redact_url(value)!r} has an invalid port")
    if parts.query or parts.fragment:
        raise ValueError("must not contain a query string or fragment")
    if not allow_path and parts.path not in ("", "/"):
        raise ValueError("must not contain a path (http://host:port)")
    return value.rstrip("/")


def validate_s3_endpoint_url(value: str) -> str:
    """An http(s) URL with an optional path. At the root of a host (no path) that host must be
    in SIMPLETUNER_S3_HOSTS: anywhere else the root is the API, and every upload would fail."""
    value = validate_http_url(value, allow_path=True)
    parts = urlsplit(value)
    if value and parts.path in ("", "/") and (parts.hostname or "").lower() not in settings.SIMPLETUNER_S3_HOSTS:
        raise ValueError(
            f"{parts.hostname!r} is not in SIMPLETUNER_S3_HOSTS: the root of a host is the S3 endpoint only there "
            "(elsewhere end the URL with /api/cloud/storage)"
        )
    return value


def validate_proxy_url(value: str, *, stored: str) -> str:
    """A proxy URL as sent by the API or the admin form, which show the stored one redacted.

    Sending back exactly the redacted form keeps the stored URL with its password. The `***`
    placeholder in any other URL (another user, host or port) is refused: carrying the old
    password over to another proxy, or storing `***` as a password, would both be wrong
    without anyone noticing.
    """
    value = validate_http_url(value, allow_path=False)
    if value and value == redact_url(stored):
        return stored
    if urlsplit(value).password == REDACTED_PASSWORD:
        raise ValueError(
            f"'{REDACTED_PASSWORD}' keeps the stored password only for the same user, host and port "
            f"({redact_url(stored) or 'no proxy is stored'}); type the password for this proxy"
        )
    return value


def validate_ca_bundle(value: str) -> str:
    """An existing, readable PEM file with at least one certificate Python's ssl accepts."""
    if not value:
        return ""
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise ValueError("must be an absolute path")
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist")
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a PEM file")
    except OSError as exc:
        raise ValueError(f"{path} is not readable ({exc.strerror})")
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError(f"{path} contains no PEM certificate")
    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as exc:
        raise ValueError(f"{path} is not a valid PEM CA bundle ({exc.reason or exc})")
    return str(path)


def validate_timeout(value: float | None) -> float | None:
    if value is None:
        return None
    if not 0 < value <= MAX_TIMEOUT_SECONDS:
        raise ValueError(f"must be more than 0 and at most {MAX_TIMEOUT_SECONDS:.0f} seconds")
    return float(value)


def validate_output_path(value: str) -> str:
    if not value:
        return ""
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise ValueError("must be an absolute path (or start with ~)")
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} exists and is not a directory")
    return value


def validate_cost_amount(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError("must be a number")
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e10"):
        raise ValueError("must be between 0 and 9999999999.99")
    return amount.quantize(Decimal("0.01"))


def validate_hardware(value: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{hardware id: {"price_per_second": number >= 0, "label": optional text}}."""
    if len(value) > MAX_HARDWARE_ENTRIES:
        raise ValueError(f"at most {MAX_HARDWARE_ENTRIES} entries")
    table: dict[str, dict[str, Any]] = {}
    for hw_id, entry in value.items():
        if not _HARDWARE_ID.match(hw_id):
            raise ValueError(f"{hw_id!r} is not a hardware id (lowercase letters, digits, '.', '_', '-')")
        if not isinstance(entry, dict) or set(entry) - {"price_per_second", "label"}:
            raise ValueError(f"{hw_id}: must be an object with price_per_second and an optional label")
        price = entry.get("price_per_second")
        if isinstance(price, bool) or not isinstance(price, int | float) or not 0 <= price < 1000:
            raise ValueError(f"{hw_id}: price_per_second must be a number of dollars per second, 0 or more")
        label = entry.get("label", "")
        if not isinstance(label, str) or len(label) > 100:
            raise ValueError(f"{hw_id}: label must be text of at most 100 characters")
        table[hw_id] = {"price_per_second": float(price), **({"label": label} if label else {})}
    return table


def validate_model(value: str) -> str:
    if value and not _MODEL.match(value):
        raise ValueError("must be owner/name (e.g. simpletuner/advanced-trainer)")
    return value


def validate_version(value: str) -> str:
    if value and not _VERSION.match(value):
        raise ValueError("must be a version id (letters, digits, '.', '_', ':', '-')")
    return value


def validate_choice(value: str, choices: type[CostLimitPeriod] | type[CostLimitAction]) -> str:
    if value not in choices.values:
        raise ValueError(f"must be one of {', '.join(choices.values)}")
    return value


def validate_merged(provider_config: ProviderConfig, changes: dict[str, Any]) -> dict[str, list[str]]:
    """Rules across fields, checked on the configuration as it would be after `changes`."""
    from providers.costs import hardware_table

    merged = ProviderConfig(**{**_values(provider_config), **changes})
    errors: dict[str, list[str]] = {}
    if merged.cost_limit_enabled and merged.cost_limit_amount <= 0:
        errors["cost_limit_amount"] = ["must be more than 0 while cost_limit_enabled is true"]
    if merged.default_hardware and merged.default_hardware not in hardware_table(merged):
        errors["default_hardware"] = [f"{merged.default_hardware!r} is not in this provider's hardware table"]
    return errors


# --- Services ------------------------------------------------------------------------------------

CONFIG_FIELDS = (
    "display_name",
    "enabled",
    "webhook_allowed_ips",
    "webhook_require_signature",
    "ssl_verify",
    "ssl_ca_bundle",
    "proxy_url",
    "http_timeout",
    "s3_endpoint_enabled",
    "s3_public_url",
    "s3_output_path",
    "s3_endpoint_url",
    "cost_limit_enabled",
    "cost_limit_amount",
    "cost_limit_period",
    "cost_limit_action",
    "credit_balance_usd",
    "credit_low_usd",
    "hardware",
    "default_hardware",
    "model",
    "version_override",
)


def _values(provider_config: ProviderConfig) -> dict[str, Any]:
    return {name: getattr(provider_config, name) for name in ("name", *CONFIG_FIELDS)}


def provider_config_get(name: str) -> ProviderConfig:
    """The configuration row of a known provider, created with its defaults on first use."""
    if name not in provider_names():
        raise UnknownProvider(name)
    provider = get_provider(name)
    config, _ = ProviderConfig.objects.get_or_create(
        name=name, defaults={"display_name": provider.display_name, "enabled": provider.enabled_by_default}
    )
    return config


def provider_config_list() -> list[ProviderConfig]:
    return [provider_config_get(name) for name in provider_names()]


def _audit_value(name: str, value: Any) -> Any:
    if name == "proxy_url":
        return redact_url(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _credit_stamp(changed: list[str], changes: dict[str, Any]) -> dict[str, Any]:
    """A new credit amount is as of now (providers.credit subtracts the jobs completed after
    it), so changing it stamps `credit_balance_set_at`; clearing it clears the stamp. Sending
    the same amount again changes nothing, the stamp included."""
    if "credit_balance_usd" not in changed:
        return {}
    return {"credit_balance_set_at": timezone.now() if changes["credit_balance_usd"] is not None else None}


def provider_config_update(
    *,
    provider_config: ProviderConfig,
    changes: dict[str, Any],
    request: HttpRequest | None = None,
    actor: Actor | None = None,
) -> ProviderConfig:
    """Apply validated `changes`; only fields that really change are written and audited.

    A proxy URL must have gone through validate_proxy_url (which resolves its redacted form).
    """
    changed = sorted(k for k, v in changes.items() if getattr(provider_config, k) != v)
    if not changed:
        return provider_config
    stamp = _credit_stamp(changed, changes)
    changes = {**changes, **stamp}
    changed = sorted({*changed, *stamp})
    for name in changed:
        setattr(provider_config, name, changes[name])
    who = actor or Actor.from_request(request)
    provider_config.updated_by = who.username
    with transaction.atomic():
        provider_config.save(update_fields=[*changed, "updated_at", "updated_by"])
        audit_record(
            event_type=events.PROVIDER_CONFIGURED,
            request=request,
            actor=actor,
            target_type="provider",
            target_id=provider_config.name,
            action="update",
            details={"changed": changed, "values": {k: _audit_value(k, changes[k]) for k in changed}},
        )
    return provider_config
