"""User services: login, logout and self-registration."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model, login, logout
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from rest_framework import exceptions, serializers

from audit import events
from audit.services import Actor, audit_record
from cloudops.net import client_ip

REGISTRATION_DISABLED = (
    "Registration is disabled on this server. An administrator can enable it with "
    "SIMPLETUNER_ALLOW_REGISTRATION=true, or create accounts with `python manage.py createsuperuser`."
)


def user_login(*, request: HttpRequest, username: str, password: str) -> AbstractBaseUser | None:
    """Start a session for valid credentials; audit the attempt either way."""
    user = authenticate(request, username=username, password=password)
    if user is None:
        audit_record(
            event_type=events.AUTH_LOGIN_FAILED,
            actor=Actor(username=username[:150], ip=client_ip(request)),
            target_type="user",
            target_id=username,
        )
        return None
    # Audit first: if the audit trail refuses the entry, no session is started.
    with transaction.atomic():
        audit_record(
            event_type=events.AUTH_LOGIN_SUCCESS,
            actor=Actor(username=user.get_username(), ip=client_ip(request)),
            target_type="user",
            target_id=user.pk,
        )
        login(request, user)
    return user


def user_logout(*, request: HttpRequest) -> None:
    if request.user.is_authenticated:
        audit_record(event_type=events.AUTH_LOGOUT, request=request, target_type="user", target_id=request.user.pk)
    logout(request)


def user_register(*, request: HttpRequest, username: str, password: str, email: str = "") -> AbstractBaseUser:
    """Create a normal (non-staff) user when registration is enabled."""
    if not settings.SIMPLETUNER_ALLOW_REGISTRATION:
        raise exceptions.PermissionDenied(REGISTRATION_DISABLED)
    user_model = get_user_model()
    candidate = user_model(username=username, email=email)
    try:
        validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise serializers.ValidationError({"password": list(exc.messages)}) from exc
    try:
        with transaction.atomic():
            user = user_model.objects.create_user(username=username, email=email, password=password)
            audit_record(event_type=events.AUTH_REGISTERED, request=request, target_type="user", target_id=user.pk)
    except IntegrityError as exc:
        raise serializers.ValidationError({"username": "A user with that username already exists."}) from exc
    return user
