"""Admin: providers (with the Advanced configuration section) and circuit breakers (jobs: admin_jobs).

Every change goes through the same services as the API (validated, audited).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.dateparse import parse_datetime
from django.utils.safestring import SafeString

from cloudops.admin_confirm import ReadOnlyPageMixin
from cloudops.admin_lists import timestamp_column, timestamp_text
from providers import admin_jobs  # noqa: F401  # registers the jobs admin
from providers import config as validators
from providers.admin_display import circuit_text, cost_limit_text, effective_table, price_table
from providers.admin_hardware import HardwareTableField
from providers.circuit import circuit_reset
from providers.config import CONFIG_FIELDS, provider_config_update
from providers.http import redact_url
from providers.models import CircuitBreaker, ProviderConfig
from providers.registry import get_provider
from providers.serializers import ProviderConfigOutputSerializer

SSL_WARNING = (
    "Disabling SSL verification is a security risk. Only do this if you have a self-signed certificate or are "
    "behind a corporate proxy. Continue?"
)
# Remembered for the admin session once confirmed: the warning is asked once per session.
SSL_CONFIRMED_SESSION_KEY = "providers_ssl_verify_off_confirmed"

_FIELD_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "ssl_ca_bundle": validators.validate_ca_bundle,
    "http_timeout": validators.validate_timeout,
    "s3_public_url": lambda v: validators.validate_http_url(v, allow_path=True),
    "s3_output_path": validators.validate_output_path,
    "s3_endpoint_url": validators.validate_s3_endpoint_url,
    "hardware": lambda v: validators.validate_hardware(v or {}),
    "model": validators.validate_model,
    "version_override": validators.validate_version,
}


class SslVerifySelect(forms.NullBooleanSelect):
    """Django's null-boolean select (which shows the stored True/False/None as selected; a
    plain Select compares "True" with "true" and always showed "Inherit"), in our words."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.choices = [
            ("unknown", "Inherit (SIMPLETUNER_SSL_VERIFY)"),
            ("true", "Verify certificates"),
            ("false", "Do not verify certificates (insecure)"),
        ]


class ProviderConfigForm(forms.ModelForm):
    request: HttpRequest | None = None

    webhook_allowed_ips = forms.CharField(
        required=False,
        label="Webhook allowed IPs",
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One IP address or CIDR network per line (IPv4 or IPv6). Empty: every IP is accepted.",
    )
    ssl_verify = forms.NullBooleanField(
        required=False,
        label="SSL verification",
        widget=SslVerifySelect(),
    )
    confirm_disable_ssl = forms.BooleanField(required=False, label=SSL_WARNING)
    hardware = HardwareTableField(
        required=False,
        label="Price overrides",
        help_text="Prices that replace the provider's defaults (listed below), or add hardware it does not "
        "list. Fill a blank row to add one; tick Delete (or empty the row) to go back to the default price.",
    )

    class Meta:
        model = ProviderConfig
        fields = list(CONFIG_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["webhook_allowed_ips"] = "\n".join(self.instance.webhook_allowed_ips or [])
        # Shown as the API shows it; sent back unchanged it keeps the stored password.
        self.initial["proxy_url"] = redact_url(self.instance.proxy_url)
        confirmed = self.request is not None and bool(self.request.session.get(SSL_CONFIRMED_SESSION_KEY))
        # Read by ssl_confirm.js, which asks with a dialog instead of the checkbox.
        self.fields["confirm_disable_ssl"].widget.attrs.update(
            {"data-ssl-warning": SSL_WARNING, "data-session-confirmed": "true" if confirmed else "false"}
        )

    def clean_webhook_allowed_ips(self) -> list[str]:
        items = [item for item in re.split(r"[\s,]+", self.cleaned_data["webhook_allowed_ips"]) if item]
        try:
            return validators.validate_allowed_ips(items)
        except ValueError as exc:
            raise forms.ValidationError(str(exc))

    def clean_proxy_url(self) -> str:
        try:
            return validators.validate_proxy_url(self.cleaned_data["proxy_url"], stored=self.instance.proxy_url)
        except ValueError as exc:
            raise forms.ValidationError(str(exc))

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        for name, validate in _FIELD_VALIDATORS.items():
            if name in cleaned and name not in self.errors:
                try:
                    cleaned[name] = validate(cleaned[name])
                except ValueError as exc:
                    self.add_error(name, str(exc))
        stored = ProviderConfig.objects.get(pk=self.instance.pk)
        turning_off = cleaned.get("ssl_verify") is False and stored.ssl_verify is not False
        session = self.request.session if self.request is not None else {}
        if turning_off and not session.get(SSL_CONFIRMED_SESSION_KEY):
            if not cleaned.get("confirm_disable_ssl"):
                self.add_error("confirm_disable_ssl", "Tick this box to confirm: " + SSL_WARNING)
            elif self.request is not None:
                self.request.session[SSL_CONFIRMED_SESSION_KEY] = True
        changes = {k: v for k, v in cleaned.items() if k in CONFIG_FIELDS and k in self.changed_data}
        for field, problems in validators.validate_merged(stored, changes).items():
            for problem in problems:
                self.add_error(field if field in self.fields else None, problem)
        return cleaned


@admin.register(ProviderConfig)
class ProviderConfigAdmin(admin.ModelAdmin):
    form = ProviderConfigForm
    audited_by_service = frozenset({"change"})  # provider_config_update

    class Media:
        js = ["providers/admin/ssl_confirm.js"]

    list_display = ["name", "display_name", "enabled", "updated_at_display", "updated_by"]
    readonly_fields = ["name", "updated_at_display", "updated_by", "circuit_state", "effective_values"]
    readonly_fields += ["cost_limit_spend", "credit_balance_now"]
    readonly_fields += ["price_table_display"]
    fieldsets = [
        (None, {"fields": ["name", "display_name", "enabled", "circuit_state"]}),
        ("Model and hardware", {"fields": ["model", "version_override", "default_hardware"]}),
        ("Advanced configuration: webhook security", {"fields": ["webhook_allowed_ips", "webhook_require_signature"]}),
        (
            "Advanced configuration: network",
            {
                "fields": [
                    "ssl_verify",
                    "confirm_disable_ssl",
                    "ssl_ca_bundle",
                    "proxy_url",
                    "http_timeout",
                    "effective_values",
                ],
                "description": "Values set here win over HTTPS_PROXY / SIMPLETUNER_CA_BUNDLE / "
                "SIMPLETUNER_SSL_VERIFY / SIMPLETUNER_HTTP_TIMEOUT for this provider. NO_PROXY always applies.",
            },
        ),
        (
            "Advanced configuration: public URL and S3 endpoint",
            {"fields": ["s3_endpoint_enabled", "s3_public_url", "s3_endpoint_url", "s3_output_path"]},
        ),
        (
            "Cost limit",
            {
                "fields": [
                    "cost_limit_spend",
                    "cost_limit_enabled",
                    "cost_limit_amount",
                    "cost_limit_period",
                    "cost_limit_action",
                ]
            },
        ),
        (
            "Credit",
            {
                "fields": ["credit_balance_now", "credit_balance_usd", "credit_low_usd"],
                "description": "Prepaid credit at the provider. Changing the amount restarts the count: jobs "
                "completed from then on are subtracted.",
            },
        ),
        ("Hardware prices", {"fields": ["hardware", "price_table_display"]}),
        ("History", {"fields": ["updated_at_display", "updated_by"]}),
    ]

    updated_at_display = timestamp_column("updated_at", "Updated at")

    # --- What the API reports besides the stored fields ------------------------------------

    @admin.display(description="Circuit breaker")
    def circuit_state(self, obj: ProviderConfig) -> str:
        return circuit_text(_api_view(obj)["circuit_breaker"])

    @admin.display(description="Effective values (what calls and jobs use)")
    def effective_values(self, obj: ProviderConfig) -> SafeString:
        return effective_table(_api_view(obj)["effective"])

    @admin.display(description="Spend")
    def cost_limit_spend(self, obj: ProviderConfig) -> str:
        return cost_limit_text(_api_view(obj)["cost_limit"])

    @admin.display(description="Balance")
    def credit_balance_now(self, obj: ProviderConfig) -> str:
        """`$61.20 left of $100.00 set 2026-12-01 09:00:00 UTC; low mark $20.00` (as the API's `credit`)."""
        credit = _api_view(obj)["credit"]
        if credit is None:
            return "Not tracked (no credit amount set)."
        since = timestamp_text(parse_datetime(credit["set_at"])) if credit["set_at"] else "unknown"
        low = " (LOW: health degraded, submissions warned)" if credit["low"] else ""
        return (
            f"${credit['balance_usd']:.2f} left of ${credit['amount_usd']:.2f} set {since}; "
            f"low mark ${credit['low_usd']:.2f}{low}."
        )

    @admin.display(description="Prices charged")
    def price_table_display(self, obj: ProviderConfig) -> SafeString:
        defaults = {hw.id: hw.price_per_second for hw in get_provider(obj.name).hardware_defaults().values()}
        view = _api_view(obj)
        return price_table(view["hardware_prices"], defaults, view["hardware"])

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> type:
        form = super().get_form(request, obj, change=change, **kwargs)
        # A class per request: the form needs the session, and class attributes are shared.
        return type("ProviderConfigRequestForm", (form,), {"request": request})

    def save_model(self, request: HttpRequest, obj: ProviderConfig, form: forms.ModelForm, change: bool) -> None:
        changes = {k: v for k, v in form.cleaned_data.items() if k in CONFIG_FIELDS and k in form.changed_data}
        stored = ProviderConfig.objects.get(pk=obj.pk)
        provider_config_update(provider_config=stored, changes=changes, request=request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # providers come from settings.PROVIDER_CLIENTS

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _api_view(obj: ProviderConfig) -> dict[str, Any]:
    """The provider as GET /api/cloud/providers/{name}/config shows it: the API's own
    serializer, over the stored row (after a refused save the form's instance holds the
    refused values). Once per page: the page's fields share it."""
    if "_api_view" not in obj.__dict__:
        stored = ProviderConfig.objects.get(pk=obj.pk)
        obj.__dict__["_api_view"] = ProviderConfigOutputSerializer(stored).data
    view: dict[str, Any] = obj.__dict__["_api_view"]
    return view


@admin.register(CircuitBreaker)
class CircuitBreakerAdmin(ReadOnlyPageMixin, admin.ModelAdmin):
    list_display = ["provider", "state", "consecutive_failures", "failures_total", "opened_at_display", "last_error"]
    opened_at_display = timestamp_column("opened_at", "Opened at")
    actions = ["reset_selected"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in CircuitBreaker._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Close the selected circuits now", permissions=["change"])
    def reset_selected(self, request: HttpRequest, queryset: QuerySet[CircuitBreaker]) -> None:
        closed = sum(circuit_reset(breaker.provider, request=request) for breaker in queryset)
        self.message_user(request, f"{closed} circuit(s) are now closed.")
