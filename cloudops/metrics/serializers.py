from __future__ import annotations

from typing import Any

from rest_framework import serializers

from cloudops.metrics.categories import CATEGORIES, TEMPLATES, UnknownCategory, normalize_categories
from cloudops.metrics.models import MetricsConfig
from cloudops.serializers import StrictBooleanField, StrictInputSerializer


def _categories(value: list[str]) -> list[str]:
    try:
        return normalize_categories(value)
    except UnknownCategory as exc:
        raise serializers.ValidationError(str(exc)) from exc


def _category_field() -> serializers.ChoiceField:
    known = ", ".join(CATEGORIES)
    return serializers.ChoiceField(
        choices=list(CATEGORIES), error_messages={"invalid_choice": f"unknown category '{{input}}' (known: {known})"}
    )


class MetricsConfigInputSerializer(StrictInputSerializer):
    """PUT body: either field may be left out (it is then unchanged), but not both."""

    min_fields = 1  # the OpenAPI schema says so too (minProperties)
    prometheus_enabled = StrictBooleanField(required=False)
    prometheus_categories = serializers.ListField(child=_category_field(), required=False)

    def validate_prometheus_categories(self, value: list[str]) -> list[str]:
        return _categories(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if not attrs:
            raise serializers.ValidationError("Send prometheus_enabled and/or prometheus_categories.")
        return attrs


class MetricsPreviewQuerySerializer(serializers.Serializer):
    categories = serializers.ListField(child=_category_field(), required=False)

    def validate_categories(self, value: list[str]) -> list[str]:
        return _categories(value)


class MetricsConfigOutputSerializer(serializers.ModelSerializer):
    available_categories = serializers.SerializerMethodField()
    templates = serializers.SerializerMethodField()

    class Meta:
        model = MetricsConfig
        fields = [
            "prometheus_enabled",
            "prometheus_categories",
            "available_categories",
            "templates",
            "updated_at",
            "updated_by",
        ]
        read_only_fields = fields

    def get_available_categories(self, config: MetricsConfig) -> list[dict[str, str]]:
        return [{"id": name, "description": text} for name, text in CATEGORIES.items()]

    def get_templates(self, config: MetricsConfig) -> list[dict[str, Any]]:
        return [{"id": name, **template} for name, template in TEMPLATES.items()]


class MetricsPreviewOutputSerializer(serializers.Serializer):
    categories = serializers.ListField(child=serializers.CharField())
    content = serializers.CharField()
    metric_count = serializers.IntegerField()
