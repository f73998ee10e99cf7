"""DRF authentication by API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from cloudops.apikeys import api_key_find
from cloudops.models import ApiKey


def presented_api_key(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = request.headers.get("X-API-Key", "").strip()
    return key or None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticate by API key. A presented but unknown or revoked key is a 401, never a
    silent fall-through to anonymous."""

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, ApiKey] | None:
        raw_key = presented_api_key(request._request)
        if raw_key is None:
            return None
        api_key = api_key_find(raw_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return api_key.owner, api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="cloudops"'
