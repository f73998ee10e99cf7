"""The OpenAPI schema's error answers, described once for every operation.

drf-spectacular documents the success answer a view declares. The error answers follow
rules the whole API shares, so they are added here from what each operation is:

- 400: it takes a body or query parameters (validation, the JSON limits of cloudops/jsonbody);
- 401 and 403: it is not public (no credentials; credentials without the permission);
- 404: its path names something (`{job_id}`, `{provider}`, ...);
- 413: it takes a body (the request-size bound);
- 429: the rate limiter may refuse it (every path but the excluded ones);
- 503: it changes something (the audit trail fails closed; a fail-closed rate limit whose
  state backend is down).

Every error body is `{"detail": "..."}`; a 400 adds `errors` with the field-by-field detail.

Request bodies are described as strictly as they are parsed (cloudops.serializers
StrictInputSerializer): no properties beyond the listed ones, strings that may not be blank
have `minLength: 1`, and no string may hold NUL. API keys are described as the two ways to
present them (`Authorization: Bearer`, `X-API-Key`), each an alternative to the session cookie.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from cloudops.ratelimit.rules import is_excluded
from cloudops.serializers import StrictInputSerializer

_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_DESCRIPTIONS = {
    "400": "The request is invalid; `detail` says why and `errors` names each field.",
    "401": "No valid credentials were presented.",
    "403": "The credentials do not carry the permission this needs.",
    "404": "Nothing by that name or id (or not visible to you).",
    "413": "The request body exceeds the server's limit.",
    "429": "Rate limit exceeded; see Retry-After.",
    "503": "Temporarily unable to record or check this (audit trail or rate-limit state); retry later.",
}


# Text the API stores refuses NUL (cloudops/jsonbody.py); strings say so in the schema.
NO_NUL = "^[^\\u0000]*$"


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """cloudops.authentication.ApiKeyAuthentication: a bearer token or an X-API-Key header."""

    target_class = "cloudops.authentication.ApiKeyAuthentication"
    name = ["bearerAuth", "apiKeyHeader"]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {"type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer <key>`."},
            {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An API key."},
        ]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        return [{"bearerAuth": []}, {"apiKeyHeader": []}]  # either one


class ErrorOutputSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for a person to read.")
    errors = serializers.JSONField(required=False, help_text="400 only: the problems by field.")  # type: ignore[assignment]  # a field named like Serializer.errors


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema with the API's shared error answers (see the module)."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        serializer = self.get_request_serializer()
        if "requestBody" in operation and getattr(serializer, "min_fields", False):
            operation["requestBody"]["required"] = True
        responses = operation["responses"]
        for code in self._error_codes(operation):
            responses.setdefault(code, self._error_response(code))
        return operation

    def _error_codes(self, operation: dict[str, Any]) -> list[str]:
        has_body = "requestBody" in operation
        parameters = operation.get("parameters", [])
        codes = []
        if has_body or any(p.get("in") == "query" for p in parameters):
            codes.append("400")
        if not self._is_public():
            codes += ["401", "403"]
        if any(p.get("in") == "path" for p in parameters):
            codes.append("404")
        if has_body:
            codes.append("413")
        if not is_excluded(self.path, self.method):
            codes.append("429")
        if self.method in _UNSAFE:
            codes.append("503")
        return codes

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        self._direction = direction  # read by _insert_field_validators, which is not told
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and isinstance(serializer, StrictInputSerializer):
            schema["additionalProperties"] = False  # unknown fields are a 400
            if serializer.min_fields:
                schema["minProperties"] = serializer.min_fields
        return schema

    def _map_serializer_field(self, field: Any, direction: str, bypass_extensions: bool = False) -> dict[str, Any]:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        string = isinstance(field, serializers.CharField) and schema.get("type") == "string"
        if direction == "request" and string and not field.allow_blank:
            schema.setdefault("minLength", 1)
        return schema

    def _insert_field_validators(self, field: Any, schema: dict[str, Any]) -> None:
        super()._insert_field_validators(field, schema)
        request = getattr(self, "_direction", "request") == "request"
        if request and schema.get("type") == "string" and "pattern" not in schema and "format" not in schema:
            schema["pattern"] = NO_NUL

    def _is_public(self) -> bool:
        return any(issubclass(p, AllowAny) for p in getattr(self.view, "permission_classes", []))

    def _error_response(self, code: str) -> dict[str, Any]:
        component = self.resolve_serializer(ErrorOutputSerializer, "response")
        return {
            "description": _DESCRIPTIONS[code],
            "content": {"application/json": {"schema": component.ref}},
        }
