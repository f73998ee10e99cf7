from __future__ import annotations

from rest_framework import serializers

from audit.models import AuditEntry


class AuditQuerySerializer(serializers.Serializer):
    event_type = serializers.CharField(required=False, max_length=64)
    actor = serializers.CharField(required=False, max_length=150)
    target_type = serializers.CharField(required=False, max_length=64)
    target_id = serializers.CharField(required=False, max_length=128)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)
    offset = serializers.IntegerField(required=False, min_value=0, default=0)
    cursor = serializers.IntegerField(required=False, min_value=1)

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
