"""User services: login, logout and self-registration, and the audit of every login."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model, login, logout
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from rest_framework import exceptions, serializers

from cloudops import audit_events as events
from cloudops import auditing
from cloudops.auditing import Actor, user_agent
from cloudops.net import client_ip
from cloudops.structured_logging import get_logger

logger = get_logger("simpletuner.cloud.auth")

REGISTRATION_DISABLED = (
    "Registration is disabled on this server. An administrator can enable it with "
    "SIMPLETUNER_ALLOW_REGISTRATION=true, or create accounts with `python manage.py createsuperuser`."
)


def user_row_lock(user_id: int) -> None:
    """Lock a user's row until the caller's transaction ends: what serialises one user's
    decisions that count their own rows (quota at submission, queue slots, subscriptions).
    PostgreSQL and MariaDB wait on it; SQLite has one writer at a time anyway."""
    get_user_model().objects.select_for_update().filter(pk=user_id).values_list("pk", flat=True).first()


def user_login(*, request: HttpRequest, username: str, password: str) -> AbstractBaseUser | None:
    """Start a session for valid credentials. The attempt is audited either way, by the
    receivers below, as every login is."""
    user = authenticate(request, username=username, password=password)
    if user is None:
        return None
    # If the audit entry cannot be written, login() raises and last_login is rolled back too.
    with transaction.atomic():
        login(request, user)
    return user


def user_logout(*, request: HttpRequest) -> None:
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
            auditing.record(event_type=events.AUTH_REGISTERED, request=request, target_type="user", target_id=user.pk)
    except IntegrityError as exc:
        raise serializers.ValidationError({"username": "A user with that username already exists."}) from exc
    return user


# --- Auditing logins ---------------------------------------------------------------------------
# Django sends these signals for every login and logout, whichever form the password came
# through (the API, the admin's form, the test client), so these receivers are the one place
# where they are audited. cloudops.apps connects them.


def _login_details(request: HttpRequest | None, **extra: str) -> dict[str, str]:
    details = {name: value for name, value in extra.items() if value}
    if request is not None:
        details.update(user_agent=user_agent(request), path=request.path[:200])
    return details


def audit_login_failed(
    sender: object, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """A wrong password, an unknown or inactive user; `reason` when sent by our own forms."""
    username = str(credentials.get("username", ""))[:150]
    auditing.record(
        event_type=events.AUTH_LOGIN_FAILED,
        actor=Actor(username=username, ip=client_ip(request) if request is not None else ""),
        target_type="user",
        target_id=username,
        details=_login_details(request, reason=kwargs.get("reason", "")),
    )


def audit_login_success(sender: object, request: HttpRequest, user: AbstractBaseUser, **kwargs: Any) -> None:
    try:
        auditing.record(
            event_type=events.AUTH_LOGIN_SUCCESS,
            actor=Actor(username=user.get_username(), ip=client_ip(request)),
            target_type="user",
            target_id=user.pk,
            details=_login_details(request),
        )
    except Exception:
        # login() has already put the user in the session: take it out again, so a login
        # the audit trail could not record never starts a session, whoever handles the error.
        request.session.flush()
        request.user = AnonymousUser()
        raise


def audit_logout(sender: object, request: HttpRequest, user: AbstractBaseUser | None, **kwargs: Any) -> None:
    if user is None:  # logging out without a session
        return
    try:
        auditing.record(
            event_type=events.AUTH_LOGOUT,
            actor=Actor(username=user.get_username(), ip=client_ip(request)),
            target_type="user",
            target_id=user.pk,
            details=_login_details(request),
        )
    except Exception:
        # Unlike a login, a logout must not fail closed: refusing it would keep a session alive.
        logger.exception("could not audit a logout", extra={"user_id": user.pk})
