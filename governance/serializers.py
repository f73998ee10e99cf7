"""Input and output bodies of /api/approvals/*: one parse per boundary, errors name the field."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from cloudops.serializers import StrictBooleanField, StrictCharField, StrictChoiceField, StrictInputSerializer
from governance.models import ApprovalRequest, ApprovalRule, ApprovalStatus, ApproverLevel, RuleCondition
from governance.roles import ROLE_GROUPS
from governance.rules import threshold_problem
from providers.registry import provider_names

MAX_PRIORITY = 2**31 - 1
ROLES = ", ".join(ROLE_GROUPS)


class StrictIntegerField(serializers.IntegerField):
    """JSON integers only (DRF's IntegerField would take "5" and 5.0)."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class ApprovalRuleInputSerializer(StrictInputSerializer):
    """A rule as created (POST: name and condition required) or changed (PUT/PATCH: only
    the fields sent; the threshold is checked against the condition the rule ends with)."""

    name = StrictCharField(max_length=100)
    condition = StrictChoiceField(choices=RuleCondition.choices)
    threshold = serializers.JSONField(required=False, allow_null=True)
    applies_to_provider = StrictCharField(required=False, allow_blank=True, max_length=32)
    required_approver_level = StrictChoiceField(choices=ApproverLevel.choices, required=False)
    exempt_levels = serializers.ListField(
        child=StrictChoiceField(
            choices=list(ROLE_GROUPS), error_messages={"invalid_choice": f"unknown role '{{input}}' (roles: {ROLES})."}
        ),
        required=False,
        max_length=len(ROLE_GROUPS),
    )
    priority = StrictIntegerField(required=False, min_value=-MAX_PRIORITY, max_value=MAX_PRIORITY)
    enabled = StrictBooleanField(required=False)

    def validate_applies_to_provider(self, value: str) -> str:
        if value and value not in provider_names():
            raise serializers.ValidationError(f"unknown provider {value!r} (known: {', '.join(provider_names())}).")
        return value

    def validate_exempt_levels(self, value: list[str]) -> list[str]:
        return sorted(set(value), key=lambda name: ROLE_GROUPS[name])

    def validate_name(self, value: str) -> str:
        existing = ApprovalRule.objects.filter(name=value)
        if self.instance is not None:
            existing = existing.exclude(pk=self.instance.pk)
        if not value.strip():
            raise serializers.ValidationError("may not be blank.")
        if existing.exists():
            raise serializers.ValidationError(f"a rule named {value!r} already exists.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if "threshold" in attrs or "condition" in attrs:
            # A change is checked against the rule it leaves: the fields sent over the stored ones.
            stored: dict[str, Any] = {}
            if self.instance is not None:
                stored = {"condition": self.instance.condition, "threshold": self.instance.threshold}
            final = {"threshold": None, **stored, **attrs}
            problem = threshold_problem(str(final["condition"]), final["threshold"])
            if problem:
                raise serializers.ValidationError({"threshold": [problem]})
        return attrs


class ApprovalRuleOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApprovalRule
        fields = [
            "id",
            "name",
            "condition",
            "threshold",
            "applies_to_provider",
            "required_approver_level",
            "exempt_levels",
            "priority",
            "enabled",
            "created_at",
            "updated_at",
            "updated_by",
        ]
        read_only_fields = fields


class ApprovalRuleListBodySerializer(serializers.Serializer):
    rules = ApprovalRuleOutputSerializer(many=True)
    total = serializers.IntegerField()


class ApprovalRuleBodySerializer(serializers.Serializer):
    rule = ApprovalRuleOutputSerializer()


class ApprovalRequestOutputSerializer(serializers.ModelSerializer):
    job_id = serializers.CharField(read_only=True)
    submitter = serializers.CharField(source="job.owner.get_username", read_only=True)
    provider = serializers.CharField(source="job.provider", read_only=True)
    hardware = serializers.CharField(source="job.hardware", read_only=True)
    job_name = serializers.CharField(source="job.name", read_only=True)
    job_status = serializers.CharField(source="job.status", read_only=True)

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "job_id",
            "job_name",
            "job_status",
            "submitter",
            "provider",
            "hardware",
            "rule_name",
            "required_level",
            "reason",
            "status",
            "created_at",
            "expires_at",
            "decided_at",
            "decided_by",
            "decision_reason",
        ]
        read_only_fields = fields


class ApprovalRequestListQuerySerializer(serializers.Serializer):
    status = StrictChoiceField(choices=ApprovalStatus.choices, required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)


class ApprovalRequestListBodySerializer(serializers.Serializer):
    requests = ApprovalRequestOutputSerializer(many=True)
    total = serializers.IntegerField()


class ApprovalRequestBodySerializer(serializers.Serializer):
    request = ApprovalRequestOutputSerializer()


class DecisionInputSerializer(StrictInputSerializer):
    reason = StrictCharField(required=False, allow_blank=True, max_length=1000, default="")
