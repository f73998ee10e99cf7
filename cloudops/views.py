"""Auth, user and API key endpoints: parse, call one service, serialize."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import ensure_csrf_cookie
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cloudops import accounts
from cloudops.apikeys import api_key_create, api_key_revoke
from cloudops.models import ApiKey
from cloudops.openapi import ErrorOutputSerializer
from cloudops.permissions import has_staff_perm, refuse_unless_allowed, request_user
from cloudops.roles import user_role
from cloudops.serializers import (
    ApiKeyBodySerializer,
    ApiKeyCreatedBodySerializer,
    ApiKeyInputSerializer,
    ApiKeyListBodySerializer,
    LoginInputSerializer,
    LogoutBodySerializer,
    MeBodySerializer,
    RegisterInputSerializer,
    UserBodySerializer,
)


@method_decorator(ensure_csrf_cookie, name="dispatch")
class LoginView(APIView):
    """Start a session. The response sets `sessionid` and `csrftoken` cookies; later unsafe
    session requests send the token back as `X-CSRFToken`."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=LoginInputSerializer, responses={200: UserBodySerializer, 401: ErrorOutputSerializer})
    def post(self, request: Request) -> Response:
        data = LoginInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = accounts.user_login(request=request._request, **data.validated_data)
        if user is None:
            return Response({"detail": "Invalid username or password."}, status=status.HTTP_401_UNAUTHORIZED)
        return Response(UserBodySerializer({"user": user}).data)


class LogoutView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(request=None, responses={200: LogoutBodySerializer})
    def post(self, request: Request) -> Response:
        accounts.user_logout(request=request._request)
        return Response(LogoutBodySerializer({"status": "logged_out"}).data)


class RegisterView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=RegisterInputSerializer,
        responses={201: UserBodySerializer, 403: ErrorOutputSerializer},
        description="403 while registration is off (SIMPLETUNER_ALLOW_REGISTRATION).",
    )
    def post(self, request: Request) -> Response:
        data = RegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = accounts.user_register(request=request._request, **data.validated_data)
        return Response(UserBodySerializer({"user": user}).data, status=status.HTTP_201_CREATED)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: MeBodySerializer})
    def get(self, request: Request) -> Response:
        auth = request.auth if isinstance(request.auth, ApiKey) else None
        method = {"method": "api_key" if auth else "session", "api_key": auth.prefix if auth else None}
        body = {"user": request.user, "auth": method, "role": user_role(request.user)}
        return Response(MeBodySerializer(body).data)


class ApiKeyListView(APIView):
    """Your own API keys. The full key appears once, in the creation response."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: ApiKeyListBodySerializer})
    def get(self, request: Request) -> Response:
        keys = list(ApiKey.objects.filter(owner=request_user(request)).select_related("owner"))
        return Response(ApiKeyListBodySerializer({"api_keys": keys, "total": len(keys)}).data)

    @extend_schema(request=ApiKeyInputSerializer, responses={201: ApiKeyCreatedBodySerializer})
    def post(self, request: Request) -> Response:
        refuse_unless_allowed(request_user(request), "create_api_key")
        data = ApiKeyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        api_key, raw_key = api_key_create(
            owner=request_user(request), name=data.validated_data["name"], request=request
        )
        body = {"api_key": api_key, "key": raw_key, "warning": "Store this key now: it is shown only once."}
        return Response(ApiKeyCreatedBodySerializer(body).data, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(APIView):
    """Revoke a key: your own, or anyone's with staff status and cloudops.change_apikey
    (revoking is a change: keys are never deleted). Other keys are a 404."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: ApiKeyBodySerializer})
    def delete(self, request: Request, key_id: int) -> Response:
        any_key = has_staff_perm(request.user, "cloudops.change_apikey")
        keys = ApiKey.objects.all() if any_key else ApiKey.objects.filter(owner=request_user(request))
        api_key = get_object_or_404(keys, pk=key_id)
        api_key = api_key_revoke(api_key=api_key, request=request)
        return Response(ApiKeyBodySerializer({"api_key": api_key}).data)
