"""Input and output serializers of the providers and jobs API (separate per endpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from rest_framework import serializers

from cloudops.serializers import StrictInputSerializer
from providers import config as validators
from providers.circuit import circuit_snapshot
from providers.costs import cost_limit_status, hardware_table
from providers.credentials import public_base_url, webhook_url
from providers.http import network_settings, redact_url
from providers.models import CostLimitAction, CostLimitPeriod, Job, JobStatus, ProviderConfig
from providers.registry import provider_names


class StrictBooleanField(serializers.BooleanField):
    """JSON true/false only: "no" or 0 for a security toggle is a 400, not a guess."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictCharField(serializers.CharField):
    """Strings only (DRF's CharField would turn 123 into "123")."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


def _check(validator: Any, value: Any, **kwargs: Any) -> Any:
    try:
        return validator(value, **kwargs)
    except ValueError as exc:
        raise serializers.ValidationError(str(exc))


# --- Providers -------------------------------------------------------------------------------


class ProviderConfigInputSerializer(StrictInputSerializer):
    """PUT/PATCH body; every field optional, only the fields sent change.
    context["provider_config"] is the row being changed (for rules across fields)."""

    display_name = StrictCharField(required=False, allow_blank=True, max_length=100)
    enabled = StrictBooleanField(required=False)
    webhook_allowed_ips = serializers.ListField(child=StrictCharField(max_length=100), required=False, allow_null=True)
    webhook_require_signature = StrictBooleanField(required=False)
    ssl_verify = StrictBooleanField(required=False, allow_null=True)
    ssl_ca_bundle = StrictCharField(required=False, allow_blank=True, max_length=1024)
    proxy_url = StrictCharField(required=False, allow_blank=True, max_length=2048)
    http_timeout = serializers.FloatField(required=False, allow_null=True)
    s3_endpoint_enabled = StrictBooleanField(required=False)
    s3_public_url = StrictCharField(required=False, allow_blank=True, max_length=2048)
    s3_output_path = StrictCharField(required=False, allow_blank=True, max_length=1024)
    cost_limit_enabled = StrictBooleanField(required=False)
    cost_limit_amount = serializers.DecimalField(required=False, max_digits=12, decimal_places=2, min_value=0)
    cost_limit_period = serializers.ChoiceField(required=False, choices=CostLimitPeriod.choices)
    cost_limit_action = serializers.ChoiceField(required=False, choices=CostLimitAction.choices)
    hardware = serializers.DictField(required=False)
    default_hardware = StrictCharField(required=False, allow_blank=True, max_length=64)
    model = StrictCharField(required=False, allow_blank=True, max_length=200)
    version_override = StrictCharField(required=False, allow_blank=True, max_length=128)

    def validate_webhook_allowed_ips(self, value: list[str] | None) -> list[str]:
        return _check(validators.validate_allowed_ips, value or [])

    def validate_ssl_ca_bundle(self, value: str) -> str:
        return _check(validators.validate_ca_bundle, value)

    def validate_proxy_url(self, value: str) -> str:
        return _check(validators.validate_http_url, value, allow_path=False)

    def validate_http_timeout(self, value: float | None) -> float | None:
        return _check(validators.validate_timeout, value)

    def validate_s3_public_url(self, value: str) -> str:
        return _check(validators.validate_http_url, value, allow_path=True)

    def validate_s3_output_path(self, value: str) -> str:
        return _check(validators.validate_output_path, value)

    def validate_hardware(self, value: dict[str, Any]) -> dict[str, Any]:
        return _check(validators.validate_hardware, value)

    def validate_model(self, value: str) -> str:
        return _check(validators.validate_model, value)

    def validate_version_override(self, value: str) -> str:
        return _check(validators.validate_version, value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        errors = validators.validate_merged(self.context["provider_config"], attrs)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ProviderPublicSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProviderConfig
        fields = ["name", "display_name", "enabled"]
        read_only_fields = fields


class ProviderConfigOutputSerializer(serializers.ModelSerializer):
    proxy_url = serializers.SerializerMethodField()
    effective = serializers.SerializerMethodField()
    hardware_prices = serializers.SerializerMethodField()
    cost_limit = serializers.SerializerMethodField()
    circuit_breaker = serializers.SerializerMethodField()
    cost_limit_amount = serializers.DecimalField(max_digits=12, decimal_places=2, coerce_to_string=False)

    class Meta:
        model = ProviderConfig
        fields = [
            "name",
            *validators.CONFIG_FIELDS,
            "updated_at",
            "updated_by",
            "effective",
            "hardware_prices",
            "cost_limit",
            "circuit_breaker",
        ]
        read_only_fields = fields

    def get_proxy_url(self, obj: ProviderConfig) -> str:
        return redact_url(obj.proxy_url)

    def get_effective(self, obj: ProviderConfig) -> dict[str, Any]:
        """The values calls and jobs really use, after the environment fills the gaps."""
        return {
            **network_settings(obj).describe(),
            "public_url": public_base_url(obj),
            "webhook_url": webhook_url(obj),
            "s3_output_path": str(
                Path(obj.s3_output_path).expanduser() if obj.s3_output_path else settings.OUTPUTS_DIR
            ),
        }

    def get_hardware_prices(self, obj: ProviderConfig) -> dict[str, Any]:
        return {
            hw.id: {
                "label": hw.label,
                "price_per_second": hw.price_per_second,
                "price_per_hour": round(hw.price_per_second * 3600, 4),
            }
            for hw in hardware_table(obj).values()
        }

    def get_cost_limit(self, obj: ProviderConfig) -> dict[str, Any]:
        return cost_limit_status(obj).as_dict()

    def get_circuit_breaker(self, obj: ProviderConfig) -> dict[str, Any]:
        status = next(c for c in circuit_snapshot() if c.provider == obj.name)
        return {
            "state": status.state,
            "failures_total": status.failures_total,
            "retry_in_seconds": status.retry_in_seconds,
        }


# --- Jobs ----------------------------------------------------------------------------------------


class JobSubmitInputSerializer(StrictInputSerializer):
    provider = StrictCharField(max_length=32)
    config = serializers.DictField(required=False, default=dict)
    dataloader_config = serializers.ListField(child=serializers.DictField(), required=False, default=list)
    hardware = StrictCharField(required=False, allow_blank=True, max_length=64, default="")
    name = StrictCharField(required=False, allow_blank=True, max_length=200, default="")
    dataset = StrictCharField(required=False, allow_blank=True, max_length=1024, default="")
    idempotency_key = StrictCharField(required=False, max_length=255)

    def validate_provider(self, value: str) -> str:
        if value not in provider_names():
            raise serializers.ValidationError(f"unknown provider {value!r} (known: {', '.join(provider_names())})")
        return value


class JobListQuerySerializer(serializers.Serializer):
    status = serializers.ListField(child=serializers.ChoiceField(choices=JobStatus.choices), required=False)
    provider = StrictCharField(required=False, max_length=32)
    owner = StrictCharField(required=False, max_length=150)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)
    offset = serializers.IntegerField(required=False, min_value=0, default=0)


def output_roots() -> dict[str, Path]:
    """Each provider's output directory (the S3 endpoint writes {root}/{job id}/...)."""
    roots = {}
    for config in ProviderConfig.objects.all():
        roots[config.name] = Path(config.s3_output_path).expanduser() if config.s3_output_path else settings.OUTPUTS_DIR
    return roots


class JobOutputSerializer(serializers.ModelSerializer):
    """A job as the API shows it. Never the upload token or secret (they are credentials)."""

    owner = serializers.CharField(source="owner.get_username", read_only=True)
    cost_usd = serializers.DecimalField(max_digits=14, decimal_places=6, coerce_to_string=False, read_only=True)
    output = serializers.SerializerMethodField()
    upload_progress = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "name",
            "owner",
            "provider",
            "external_id",
            "status",
            "hardware",
            "config",
            "dataloader_config",
            "dataset",
            "created_at",
            "updated_at",
            "started_at",
            "completed_at",
            "last_synced_at",
            "cancel_requested_at",
            "run_seconds",
            "cost_usd",
            "error",
            "progress",
            "output",
            "upload_progress",
        ]
        read_only_fields = fields

    def get_output(self, obj: Job) -> dict[str, Any]:
        roots = self.context.get("output_roots") or output_roots()
        root = roots.get(obj.provider, settings.OUTPUTS_DIR)
        return {"bucket": obj.id, "path": str(root / obj.id), "url": obj.output_url or None}

    def get_upload_progress(self, obj: Job) -> dict[str, Any]:
        last = obj.last_upload_at.isoformat().replace("+00:00", "Z") if obj.last_upload_at else None
        return {"files": obj.upload_objects, "bytes": obj.upload_bytes, "last_upload_at": last}
