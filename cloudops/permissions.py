"""Who may use the control plane: the rule the admin enforces, in one place for the API too.

Django's admin lets a user in only if they are active and staff, and then shows them only the
models they hold permissions on (a superuser holds them all). The API follows the same rule,
so staff status alone grants nothing: `has_staff_perm(user, "audit.view_auditentry")` is
exactly "could this user see audit entries in the admin". See the README's Authentication
section for which permission each endpoint asks.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.http import HttpRequest
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from cloudops.roles import action_refusal


def request_user(request: Request | HttpRequest) -> User:
    """The request's user, authenticated (what the view's permission classes admitted); a view
    reached anonymously by mistake answers 401 rather than acting for nobody."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise NotAuthenticated()
    return user


def refuse_unless_allowed(user: Any, action: str) -> None:
    """403 naming the role when the user's role may not do `action` (e.g. "submit_job")."""
    refusal = action_refusal(user, action)
    if refusal:
        raise PermissionDenied(refusal)


def has_staff_perm(user: Any, perm: str) -> bool:
    """Active staff holding `perm` ("app_label.codename"); superusers hold every permission.

    For users who are not superusers, the first call per user object reads their permissions
    from the database (Django caches them on the object): call it from sync code.
    """
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff and user.has_perm(perm))


class StaffPermission(BasePermission):
    """Staff holding the Django permission the admin would require for the same thing:
    `view_perm` for safe methods (GET, HEAD, OPTIONS), `change_perm` for the others.

    Use `StaffPermission.of(view=..., change=...)` in `permission_classes`. A method whose
    permission is not given is refused. Unauthenticated callers get 401 (DRF checks
    authentication first); others 403 naming the permission.
    """

    view_perm = ""
    change_perm = ""

    @classmethod
    def of(cls, *, view: str = "", change: str = "") -> type[StaffPermission]:
        name = f"StaffPermission({view or '-'}, {change or '-'})"
        return type(name, (cls,), {"view_perm": view, "change_perm": change})

    def has_permission(self, request: Request, view: APIView) -> bool:
        method = (request.method or "").upper()
        if not hasattr(view, method.lower()):
            # Not a method of this view: DRF answers 405 to anyone authenticated.
            return bool(request.user and request.user.is_authenticated)
        perm = self.view_perm if method in SAFE_METHODS else self.change_perm
        if not perm:
            self.message = f"{method} is not allowed to anyone here."
            return False
        self.message = f"Staff status and the {perm} permission are required."
        return has_staff_perm(request.user, perm)
