"""Input and output bodies of /api/quotas/: one parse per boundary, errors name the field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from cloudops.serializers import StrictChoiceField, StrictDecimalField, StrictInputSerializer
from governance.models import Quota, QuotaAction, QuotaScope, QuotaType
from governance.quota_services import MAX_LIMIT, quota_problems
from governance.quotas import number


class QuotaInputSerializer(StrictInputSerializer):
    """A quota as created (POST: scope, quota_type and limit required; target defaults to
    empty, action to block) or changed (PUT/PATCH: the fields sent, checked as the quota they
    leave)."""

    scope = StrictChoiceField(choices=QuotaScope.choices)
    target = serializers.CharField(required=False, allow_blank=True, max_length=150, default="")
    quota_type = StrictChoiceField(choices=QuotaType.choices)
    limit = StrictDecimalField(max_digits=12, decimal_places=2, min_value=0, max_value=MAX_LIMIT)
    action = StrictChoiceField(choices=QuotaAction.choices, required=False, default=QuotaAction.BLOCK)

    def validate_target(self, value: Any) -> str:
        if not isinstance(value, str):
            raise serializers.ValidationError("a username, a group name, or empty for a global quota.")
        return value.strip()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        final = dict(attrs)
        if self.instance is not None:
            sent = set(self.initial_data) if isinstance(self.initial_data, dict) else set()
            attrs = {name: value for name, value in attrs.items() if name in sent}
            stored = {
                name: getattr(self.instance, name) for name in ("scope", "target", "quota_type", "limit", "action")
            }
            final = {**stored, **attrs}
        problems = quota_problems(final, pk=self.instance.pk if self.instance is not None else None)
        if problems:
            raise serializers.ValidationError({name: [why] for name, why in problems.items()})
        return attrs


class AmountField(serializers.FloatField):
    """A limit or a usage as the same JSON number the 403 body and the audit entries give
    (governance.quotas.number): a count of jobs stays an integer (2, not 2.0), where FloatField
    would make it a float."""

    def to_representation(self, value: Any) -> Any:
        return number(value) if isinstance(value, Decimal) else value


class QuotaOutputSerializer(serializers.ModelSerializer):
    limit = AmountField()

    class Meta:
        model = Quota
        fields = ["id", "scope", "target", "quota_type", "limit", "action", "created_at", "updated_at", "updated_by"]
        read_only_fields = fields


class QuotaBodySerializer(serializers.Serializer):
    quota = QuotaOutputSerializer()


class EffectiveQuotaSerializer(serializers.Serializer):
    quota_type = serializers.CharField()
    limit = AmountField(allow_null=True)
    action = serializers.CharField(allow_null=True)
    quota_id = serializers.IntegerField(allow_null=True)
    scope = serializers.CharField(allow_null=True)
    usage = AmountField()
    percent_used = serializers.FloatField(allow_null=True)


class QuotaListBodySerializer(serializers.Serializer):
    quotas = QuotaOutputSerializer(many=True)
    total = serializers.IntegerField()
    effective = EffectiveQuotaSerializer(many=True)
