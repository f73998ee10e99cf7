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
from cloudops.serializers import (
    ApiKeyInputSerializer,
    ApiKeyOutputSerializer,
    LoginInputSerializer,
    RegisterInputSerializer,
    UserOutputSerializer,
)


@method_decorator(ensure_csrf_cookie, name="dispatch")
class LoginView(APIView):
    """Start a session. The response sets `sessionid` and `csrftoken` cookies; later unsafe
    session requests send the token back as `X-CSRFToken`."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=LoginInputSerializer, responses={200: UserOutputSerializer})
    def post(self, request: Request) -> Response:
        data = LoginInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = accounts.user_login(request=request._request, **data.validated_data)
        if user is None:
            return Response({"detail": "Invalid username or password."}, status=status.HTTP_401_UNAUTHORIZED)
        return Response({"user": UserOutputSerializer(user).data})


class LogoutView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(request=None, responses={200: None})
    def post(self, request: Request) -> Response:
        accounts.user_logout(request=request._request)
        return Response({"status": "logged_out"})


class RegisterView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=RegisterInputSerializer, responses={201: UserOutputSerializer})
    def post(self, request: Request) -> Response:
        data = RegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = accounts.user_register(request=request._request, **data.validated_data)
        return Response({"user": UserOutputSerializer(user).data}, status=status.HTTP_201_CREATED)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: UserOutputSerializer})
    def get(self, request: Request) -> Response:
        auth = request.auth if isinstance(request.auth, ApiKey) else None
        return Response(
            {
                "user": UserOutputSerializer(request.user).data,
                "auth": {"method": "api_key" if auth else "session", "api_key": auth.prefix if auth else None},
            }
        )


class ApiKeyListView(APIView):
    """Your own API keys. The full key appears once, in the creation response."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: ApiKeyOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        keys = ApiKey.objects.filter(owner=request.user).select_related("owner")
        return Response({"api_keys": ApiKeyOutputSerializer(keys, many=True).data, "total": keys.count()})

    @extend_schema(request=ApiKeyInputSerializer, responses={201: ApiKeyOutputSerializer})
    def post(self, request: Request) -> Response:
        data = ApiKeyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        api_key, raw_key = api_key_create(owner=request.user, name=data.validated_data["name"], request=request)
        body = {
            "api_key": ApiKeyOutputSerializer(api_key).data,
            "key": raw_key,
            "warning": "Store this key now: it is shown only once.",
        }
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(APIView):
    """Revoke a key. Staff may revoke anyone's; others only their own (else 404)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: ApiKeyOutputSerializer})
    def delete(self, request: Request, key_id: int) -> Response:
        keys = ApiKey.objects.all() if request.user.is_staff else ApiKey.objects.filter(owner=request.user)
        api_key = get_object_or_404(keys, pk=key_id)
        api_key = api_key_revoke(api_key=api_key, request=request)
        return Response({"api_key": ApiKeyOutputSerializer(api_key).data})
