"""Input and output serializers of the providers and jobs API (separate per endpoint)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from cloudops.serializers import (
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictDecimalField,
    StrictInputSerializer,
)
from providers import config as validators
from providers.circuit import circuit_snapshot
from providers.costs import cost_limit_status, hardware_table
from providers.credentials import job_endpoint_url, public_base_url, webhook_url
from providers.credit import credit_status
from providers.http import network_settings, redact_url
from providers.models import CostLimitAction, CostLimitPeriod, Job, JobStatus, ProviderConfig
from providers.paging import MAX_JOB_OFFSET, TOTAL_COUNT_CAP, BadCursor, JobCursor
from providers.registry import provider_names
from providers.selectors import output_roots


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
    s3_endpoint_url = StrictCharField(required=False, allow_blank=True, max_length=2048)
    cost_limit_enabled = StrictBooleanField(required=False)
    cost_limit_amount = StrictDecimalField(required=False, max_digits=12, decimal_places=2, min_value=0)
    cost_limit_period = serializers.ChoiceField(required=False, choices=CostLimitPeriod.choices)
    cost_limit_action = serializers.ChoiceField(required=False, choices=CostLimitAction.choices)
    credit_balance_usd = StrictDecimalField(
        required=False, allow_null=True, max_digits=12, decimal_places=2, min_value=0
    )
    credit_low_usd = StrictDecimalField(required=False, max_digits=12, decimal_places=2, min_value=0)
    hardware = serializers.DictField(required=False)
    default_hardware = StrictCharField(required=False, allow_blank=True, max_length=64)
    model = StrictCharField(required=False, allow_blank=True, max_length=200)
    version_override = StrictCharField(required=False, allow_blank=True, max_length=128)

    def validate_webhook_allowed_ips(self, value: list[str] | None) -> list[str]:
        return _check(validators.validate_allowed_ips, value or [])

    def validate_ssl_ca_bundle(self, value: str) -> str:
        return _check(validators.validate_ca_bundle, value)

    def validate_proxy_url(self, value: str) -> str:
        return _check(validators.validate_proxy_url, value, stored=self.context["provider_config"].proxy_url)

    def validate_http_timeout(self, value: float | None) -> float | None:
        return _check(validators.validate_timeout, value)

    def validate_s3_public_url(self, value: str) -> str:
        return _check(validators.validate_http_url, value, allow_path=True)

    def validate_s3_endpoint_url(self, value: str) -> str:
        return _check(validators.validate_s3_endpoint_url, value)

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
    credit_balance_usd = serializers.DecimalField(
        max_digits=12, decimal_places=2, coerce_to_string=False, allow_null=True
    )
    credit_low_usd = serializers.DecimalField(max_digits=12, decimal_places=2, coerce_to_string=False)
    credit = serializers.SerializerMethodField()

    class Meta:
        model = ProviderConfig
        fields = [
            "name",
            *validators.CONFIG_FIELDS,
            "credit_balance_set_at",
            "updated_at",
            "updated_by",
            "effective",
            "hardware_prices",
            "cost_limit",
            "credit",
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
            "s3_output_path": str(obj.output_root),
            "s3_endpoint_url": job_endpoint_url(obj),
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

    def get_credit(self, obj: ProviderConfig) -> dict[str, Any] | None:
        """The balance now (providers.credit); null while no credit amount is set."""
        status = credit_status(obj)
        return status.as_dict() if status is not None else None

    def get_circuit_breaker(self, obj: ProviderConfig) -> dict[str, Any]:
        status = next(c for c in circuit_snapshot() if c.provider == obj.name)
        return {
            "state": status.state,
            "failures_total": status.failures_total,
            "retry_in_seconds": status.retry_in_seconds,
        }


# --- Jobs ----------------------------------------------------------------------------------------


class JobSubmitInputSerializer(StrictInputSerializer):
    config = serializers.DictField(required=False, default=dict)
    dataloader_config = serializers.ListField(child=serializers.DictField(), required=False, default=list)
    hardware = StrictCharField(required=False, allow_blank=True, max_length=64, default="")
    name = StrictCharField(required=False, allow_blank=True, max_length=200, default="")
    dataset = StrictCharField(required=False, allow_blank=True, max_length=1024, default="")
    idempotency_key = StrictCharField(required=False, max_length=255)

    def get_fields(self) -> dict[str, serializers.Field]:
        # The providers are settings (PROVIDER_CLIENTS): read when the serializer is made, so the
        # OpenAPI schema lists them as the field's choices.
        names = provider_names()
        message = f"unknown provider '{{input}}' (known: {', '.join(names)})"
        provider = StrictChoiceField(choices=names, error_messages={"invalid_choice": message})
        return {"provider": provider, **super().get_fields()}


OFFSET_BOUND = (
    f"Ensure this value is less than or equal to {MAX_JOB_OFFSET}: deeper pages are read with `cursor` "
    "(each page's `next_cursor`, or follow its `next` link)."
)


class JobListQuerySerializer(serializers.Serializer):
    status = serializers.ListField(child=serializers.ChoiceField(choices=JobStatus.choices), required=False)
    provider = StrictCharField(required=False, max_length=32)
    owner = StrictCharField(required=False, max_length=150)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)
    offset = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_JOB_OFFSET,
        default=0,
        error_messages={"max_value": OFFSET_BOUND},
        help_text=f"at most {MAX_JOB_OFFSET}; page deeper with `cursor`",
    )
    cursor = StrictCharField(
        required=False, max_length=200, help_text="a page's `next_cursor`: the page after it (not with `offset`)"
    )

    def validate_cursor(self, value: str) -> JobCursor:
        try:
            return JobCursor.decode(value)
        except BadCursor as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "cursor" in attrs and attrs.get("offset"):
            raise serializers.ValidationError({"cursor": "Use either cursor or offset, not both."})
        return attrs


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
        roots = self.context.get("output_roots")
        root = output_roots()[obj.provider] if roots is None else roots[obj.provider]
        return {"bucket": obj.id, "path": str(root / obj.id), "url": obj.output_url or None}

    def get_upload_progress(self, obj: Job) -> dict[str, Any]:
        last = obj.last_upload_at.isoformat().replace("+00:00", "Z") if obj.last_upload_at else None
        return {"files": obj.upload_objects, "bytes": obj.upload_bytes, "last_upload_at": last}


# --- Response bodies: each endpoint's whole answer, so the OpenAPI schema is what it sends -----


class ProviderListBodySerializer(serializers.Serializer):
    providers = ProviderPublicSerializer(many=True)


class ProviderBodySerializer(serializers.Serializer):
    provider = ProviderConfigOutputSerializer()


class JobBodySerializer(serializers.Serializer):
    """`{"job": ...}`; context["output_roots"] (output_roots()) saves a query per job."""

    job = JobOutputSerializer()


class JobListBodySerializer(serializers.Serializer):
    jobs = JobOutputSerializer(many=True)
    total = serializers.IntegerField(
        help_text=f"jobs matching the filters, counted up to {TOTAL_COUNT_CAP} (see total_exact)"
    )
    total_exact = serializers.BooleanField(
        help_text=f"false: more than {TOTAL_COUNT_CAP} jobs match and `total` is that lower bound"
    )
    limit = serializers.IntegerField()
    offset = serializers.IntegerField(allow_null=True, help_text="null when paging by cursor")
    next_cursor = serializers.CharField(
        allow_null=True, help_text="pass as `cursor` for the next page; null: last page"
    )
    next = serializers.URLField(allow_null=True, help_text="the next page's URL (same filters, by cursor)")


class JobCancelBodySerializer(JobBodySerializer):
    job_id = serializers.CharField()
    status = serializers.ChoiceField(choices=JobStatus.choices)


class JobSubmitBodySerializer(JobCancelBodySerializer):
    idempotent_hit = serializers.BooleanField(help_text="true: a retry; this is the job the first request created")
    warnings = serializers.ListField(child=serializers.CharField())


class JobLogsBodySerializer(serializers.Serializer):
    job_id = serializers.CharField()
    status = serializers.ChoiceField(choices=JobStatus.choices)
    logs = serializers.CharField(allow_blank=True)
    truncated = serializers.BooleanField()
    source = serializers.ChoiceField(choices=["provider", "stored"])  # type: ignore[assignment]  # named like Field.source


class OutputObjectSerializer(serializers.Serializer):
    key = serializers.CharField()
    size = serializers.IntegerField()
    last_modified = serializers.DateTimeField()
    url = serializers.CharField(help_text="A presigned GET of the S3 endpoint: no other credential needed.")


class JobOutputsBodySerializer(serializers.Serializer):
    job_id = serializers.CharField()
    status = serializers.ChoiceField(choices=JobStatus.choices)
    objects = OutputObjectSerializer(many=True)
    count = serializers.IntegerField(help_text="Objects in the bucket; `objects` lists the first 1000.")
    truncated = serializers.BooleanField()
    expires_in = serializers.IntegerField(help_text="Seconds the links work (SIMPLETUNER_OUTPUT_URL_EXPIRES_SECONDS).")
    expires_at = serializers.DateTimeField()


class ProviderErrorBodySerializer(serializers.Serializer):
    """A provider's failure as the caller sees it (502, 503, 504; 400 for input it refused)."""

    detail = serializers.CharField()
    provider = serializers.CharField()
    provider_status = serializers.IntegerField(required=False, help_text="the provider's own HTTP status")
    job_id = serializers.CharField(required=False)
    job = JobOutputSerializer(required=False, help_text="the job, now failed (submit only)")
