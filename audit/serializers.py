from __future__ import annotations

from rest_framework import serializers

from audit.models import AuditEntry
from cloudops.serializers import MAX_BIGINT, MAX_OFFSET, StrictInputSerializer


class AuditQuerySerializer(serializers.Serializer):
    event_type = serializers.CharField(required=False, max_length=64)
    actor = serializers.CharField(required=False, max_length=150)
    target_type = serializers.CharField(required=False, max_length=64)
    target_id = serializers.CharField(required=False, max_length=128)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=MAX_OFFSET, default=0)
    cursor = serializers.IntegerField(required=False, min_value=1, max_value=MAX_BIGINT)

    def validate(self, attrs: dict) -> dict:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(dict.fromkeys(unknown, "Unknown query parameter."))
        if "cursor" in attrs and attrs.get("offset"):
            raise serializers.ValidationError({"cursor": "Use either cursor or offset, not both."})
        if attrs.get("since") and attrs.get("until") and attrs["since"] > attrs["until"]:
            raise serializers.ValidationError({"until": "Must not be earlier than since."})
        return attrs


class AuditEntryOutputSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = AuditEntry
        fields = ["sequence", "timestamp", "event_type", "actor", "target_type", "target_id", "action", "details"]
        read_only_fields = fields

    def get_actor(self, entry: AuditEntry) -> dict[str, str | None]:
        return {
            "user": entry.actor_username or None,
            "api_key": entry.actor_api_key or None,
            "ip": entry.actor_ip or None,
        }


class AuditListBodySerializer(serializers.Serializer):
    entries = AuditEntryOutputSerializer(many=True)
    total = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField(allow_null=True, help_text="null when paging by cursor")
    next_cursor = serializers.CharField(allow_null=True, help_text="pass as `cursor` for the next page")


class AuditVerifyQuerySerializer(StrictInputSerializer):
    from_sequence = serializers.IntegerField(required=False, min_value=1, max_value=MAX_BIGINT)
    to_sequence = serializers.IntegerField(required=False, min_value=1, max_value=MAX_BIGINT)

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        low, high = attrs.get("from_sequence"), attrs.get("to_sequence")
        if low is not None and high is not None and high < low:
            raise serializers.ValidationError({"to_sequence": "Must not be lower than from_sequence."})
        return attrs


class AuditStatsQuerySerializer(StrictInputSerializer):
    """No parameters: anything passed is a typo worth a 400."""


class AuditHeadOutputSerializer(serializers.Serializer):
    last_sequence = serializers.IntegerField()
    last_mac = serializers.CharField()
    anchor_sequence = serializers.IntegerField()
    anchor_mac = serializers.CharField()
    pruned_through = serializers.IntegerField()
    key_id = serializers.CharField()
    mac = serializers.CharField()


class AuditVerifyOutputSerializer(serializers.Serializer):
    status = serializers.SerializerMethodField()
    ok = serializers.BooleanField()
    reason = serializers.ChoiceField(
        choices=["edited", "reordered", "missing", "truncated", "forged", "bad_head", "wrong_key"], allow_null=True
    )
    first_bad_sequence = serializers.IntegerField(allow_null=True)
    message = serializers.CharField()
    from_sequence = serializers.IntegerField(allow_null=True)
    to_sequence = serializers.IntegerField(allow_null=True)
    full = serializers.BooleanField(help_text="the whole retained chain, including the tail checks")
    checked = serializers.IntegerField(help_text="entries whose MAC was checked")
    unverified = serializers.IntegerField(help_text="entries in the range at or before the anchor (not chained)")
    duration_ms = serializers.FloatField()
    head = AuditHeadOutputSerializer(allow_null=True)

    def get_status(self, result: dict) -> str:
        return "ok" if result["ok"] else "failed"


class AuditEdgeOutputSerializer(serializers.Serializer):
    sequence = serializers.IntegerField()
    timestamp = serializers.DateTimeField()


class AuditHeadSummaryOutputSerializer(serializers.Serializer):
    last_sequence = serializers.IntegerField()
    last_mac = serializers.CharField(allow_blank=True)
    anchor_sequence = serializers.IntegerField()
    pruned_through = serializers.IntegerField()
    key_id = serializers.CharField(allow_null=True)
    configured_key_id = serializers.CharField(allow_null=True)
    signature_valid = serializers.BooleanField(allow_null=True)


class AuditVerificationOutputSerializer(serializers.Serializer):
    finished_at = serializers.DateTimeField()
    trigger = serializers.CharField()
    ok = serializers.BooleanField()
    reason = serializers.CharField(allow_null=True)
    first_bad_sequence = serializers.IntegerField(allow_null=True)
    message = serializers.CharField()
    from_sequence = serializers.IntegerField(allow_null=True)
    to_sequence = serializers.IntegerField(allow_null=True)
    full = serializers.BooleanField()
    checked = serializers.IntegerField()
    duration_ms = serializers.FloatField()


class AuditStatsOutputSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="retained entries: head sequence minus pruned (no table scan)")
    last_24h = serializers.IntegerField()
    by_event_type = serializers.DictField(child=serializers.IntegerField())
    oldest = AuditEdgeOutputSerializer(allow_null=True)
    newest = AuditEdgeOutputSerializer(allow_null=True)
    head = AuditHeadSummaryOutputSerializer()
    retention_days = serializers.IntegerField()
    last_verification = AuditVerificationOutputSerializer(allow_null=True)
