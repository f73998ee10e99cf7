from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from cloudops.models import ApiKey

# Ranges of numeric query parameters: every number a client sends fits a 64-bit database
# column, and an offset stays far below where LIMIT/OFFSET arithmetic could overflow.
MAX_OFFSET = 10**9
MAX_BIGINT = 2**63 - 1


class StrictInputSerializer(serializers.Serializer):
    # Rejects fields it does not know instead of ignoring them. (A comment, not a docstring:
    # the OpenAPI schema would show it as the description of every input.) `min_fields`: how
    # many fields a body must send at least, for the schema's minProperties (the serializer's
    # own validate() enforces it with its message).
    min_fields = 0

    def validate(self, attrs: dict) -> dict:
        if isinstance(self.initial_data, dict):
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(dict.fromkeys(unknown, "Unknown field."))
        return super().validate(attrs)


class _StringsOnly(serializers.Field):  # type: ignore[type-arg]
    """JSON strings only: DRF's string fields would turn 123 into "123"."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class StrictCharField(_StringsOnly, serializers.CharField):
    pass


class StrictRegexField(_StringsOnly, serializers.RegexField):
    pass


class StrictEmailField(_StringsOnly, serializers.EmailField):
    pass


class StrictChoiceField(_StringsOnly, serializers.ChoiceField):
    pass


class StrictDecimalField(serializers.DecimalField):
    """JSON numbers only (DRF's DecimalField would also take "12.5"), shown as numbers."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(coerce_to_string=False, **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """JSON true/false only: "no" or 0 for a security toggle is a 400, not a guess."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class LoginInputSerializer(StrictInputSerializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=4096, trim_whitespace=False)


class RegisterInputSerializer(StrictInputSerializer):
    # ASCII on purpose: the same pattern in the OpenAPI schema (ECMA regex) means the same thing.
    username = StrictRegexField(r"^[A-Za-z0-9_.@+-]+\Z", max_length=150)
    password = StrictCharField(max_length=4096, trim_whitespace=False)
    email = StrictEmailField(required=False, allow_blank=True, default="")


class UserOutputSerializer(serializers.ModelSerializer):
    # Not an EmailField: a user may have none (""), which `format: email` would not admit.
    email = serializers.CharField(read_only=True)

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "is_staff", "is_superuser", "date_joined", "last_login"]
        read_only_fields = fields


class ApiKeyInputSerializer(StrictInputSerializer):
    name = StrictCharField(max_length=100)


class ApiKeyOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.get_username", read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "owner", "created_at", "last_used_at", "revoked_at", "is_active"]
        read_only_fields = fields


# --- Response bodies: each endpoint's whole answer, so the OpenAPI schema is what it sends -----


class UserBodySerializer(serializers.Serializer):
    """POST /api/auth/login and /api/auth/register."""

    user = UserOutputSerializer()


class LogoutBodySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["logged_out"])


class AuthMethodSerializer(serializers.Serializer):
    method = serializers.ChoiceField(choices=["api_key", "session"])
    api_key = serializers.CharField(allow_null=True, help_text="the key's prefix when method is api_key")


class MeBodySerializer(serializers.Serializer):
    user = UserOutputSerializer()
    auth = AuthMethodSerializer()
    role = serializers.ChoiceField(
        choices=["viewer", "researcher", "lead", "admin"],
        help_text="the highest role group; superusers and staff are admins, no group is researcher",
    )


class ApiKeyListBodySerializer(serializers.Serializer):
    api_keys = ApiKeyOutputSerializer(many=True)
    total = serializers.IntegerField()


class ApiKeyCreatedBodySerializer(serializers.Serializer):
    api_key = ApiKeyOutputSerializer()
    key = serializers.CharField(help_text="the whole key: shown this once, never again")
    warning = serializers.CharField()


class ApiKeyBodySerializer(serializers.Serializer):
    api_key = ApiKeyOutputSerializer()
