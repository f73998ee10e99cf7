from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from cloudops.models import ApiKey


class StrictInputSerializer(serializers.Serializer):
    """An input serializer that rejects fields it does not know instead of ignoring them."""

    def validate(self, attrs: dict) -> dict:
        if isinstance(self.initial_data, dict):
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(dict.fromkeys(unknown, "Unknown field."))
        return super().validate(attrs)


class LoginInputSerializer(StrictInputSerializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class RegisterInputSerializer(StrictInputSerializer):
    username = serializers.RegexField(r"^[\w.@+-]+\Z", max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)
    email = serializers.EmailField(required=False, allow_blank=True, default="")


class UserOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "is_staff", "is_superuser", "date_joined", "last_login"]
        read_only_fields = fields


class ApiKeyInputSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=100)


class ApiKeyOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.get_username", read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "owner", "created_at", "last_used_at", "revoked_at", "is_active"]
        read_only_fields = fields
