"""Admin: providers (with the Advanced configuration section), jobs and circuit breakers.

Every change goes through the same services as the API (validated, audited).
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from rest_framework.exceptions import APIException

from providers import config as validators
from providers.circuit import circuit_reset
from providers.config import CONFIG_FIELDS, provider_config_update
from providers.errors import ProviderError
from providers.jobs import job_cancel
from providers.models import CircuitBreaker, Job, ProviderConfig

SSL_WARNING = (
    "Disabling SSL verification is a security risk. Only do this if you have a self-signed certificate or are "
    "behind a corporate proxy. Continue?"
)
# Remembered for the admin session once confirmed, as the guide describes.
SSL_CONFIRMED_SESSION_KEY = "providers_ssl_verify_off_confirmed"

_FIELD_VALIDATORS = {
    "ssl_ca_bundle": validators.validate_ca_bundle,
    "proxy_url": lambda v: validators.validate_http_url(v, allow_path=False),
    "http_timeout": validators.validate_timeout,
    "s3_public_url": lambda v: validators.validate_http_url(v, allow_path=True),
    "s3_output_path": validators.validate_output_path,
    "hardware": lambda v: validators.validate_hardware(v or {}),
    "model": validators.validate_model,
    "version_override": validators.validate_version,
}


class ProviderConfigForm(forms.ModelForm):
    request: HttpRequest | None = None

    webhook_allowed_ips = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One IP address or CIDR network per line (IPv4 or IPv6). Empty: every IP is accepted.",
    )
    ssl_verify = forms.NullBooleanField(
        required=False,
        label="SSL verification",
        widget=forms.Select(
            choices=[
                ("unknown", "Inherit (SIMPLETUNER_SSL_VERIFY)"),
                ("true", "Verify certificates"),
                ("false", "Do not verify certificates (insecure)"),
            ]
        ),
    )
    confirm_disable_ssl = forms.BooleanField(required=False, label=SSL_WARNING)

    class Meta:
        model = ProviderConfig
        fields = list(CONFIG_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["webhook_allowed_ips"] = "\n".join(self.instance.webhook_allowed_ips or [])
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

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
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

    class Media:
        js = ["providers/admin/ssl_confirm.js"]

    list_display = ["name", "display_name", "enabled", "updated_at", "updated_by"]
    readonly_fields = ["name", "updated_at", "updated_by"]
    fieldsets = [
        (None, {"fields": ["name", "display_name", "enabled", "model", "version_override", "default_hardware"]}),
        ("Advanced configuration: webhook security", {"fields": ["webhook_allowed_ips", "webhook_require_signature"]}),
        (
            "Advanced configuration: network",
            {
                "fields": ["ssl_verify", "confirm_disable_ssl", "ssl_ca_bundle", "proxy_url", "http_timeout"],
                "description": "Values set here win over HTTPS_PROXY / SIMPLETUNER_CA_BUNDLE / "
                "SIMPLETUNER_SSL_VERIFY / SIMPLETUNER_HTTP_TIMEOUT for this provider. NO_PROXY always applies.",
            },
        ),
        (
            "Advanced configuration: public URL and S3 endpoint",
            {"fields": ["s3_endpoint_enabled", "s3_public_url", "s3_output_path"]},
        ),
        (
            "Cost limit",
            {"fields": ["cost_limit_enabled", "cost_limit_amount", "cost_limit_period", "cost_limit_action"]},
        ),
        (
            "Hardware prices",
            {"fields": ["hardware"], "description": '{"gpu-h100": {"price_per_second": 0.001525, "label": "1x H100"}}'},
        ),
        ("History", {"fields": ["updated_at", "updated_by"]}),
    ]

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


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "owner", "provider", "status", "hardware", "cost_usd", "created_at", "completed_at"]
    list_filter = ["status", "provider", ("owner", admin.RelatedOnlyFieldListFilter), "created_at"]
    search_fields = ["id", "name", "external_id", "owner__username"]
    date_hierarchy = "created_at"
    actions = ["cancel_selected"]
    # The upload token is a credential (the legacy X-Upload-Token): never shown.
    exclude = ["upload_token", "request_fingerprint"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Job._meta.fields if f.name not in self.exclude]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are submitted through the API (quotas, cost limits, audit)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # job history carries costs and audit references

    @admin.action(description="Cancel selected jobs")
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        cancelled = 0
        for job in queryset:
            try:
                job_cancel(job=job, request=request)
                cancelled += 1
            except (APIException, ProviderError) as exc:
                detail = exc.message if isinstance(exc, ProviderError) else exc.detail
                self.message_user(request, f"{job.pk}: {detail}", level=messages.WARNING)
        self.message_user(request, f"{cancelled} job(s) cancelled.")


@admin.register(CircuitBreaker)
class CircuitBreakerAdmin(admin.ModelAdmin):
    list_display = ["provider", "state", "consecutive_failures", "failures_total", "opened_at", "last_error"]
    actions = ["reset_selected"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in CircuitBreaker._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Close the selected circuits now")
    def reset_selected(self, request: HttpRequest, queryset: QuerySet[CircuitBreaker]) -> None:
        for breaker in queryset:
            circuit_reset(breaker.provider)
        self.message_user(request, "Circuits closed.")
