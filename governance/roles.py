"""Roles: who may do what beyond Django's model permissions, in one place.

A role is a Django group created by a migration (governance/migrations/0002_roles.py):
viewer < researcher < lead < admin. A user's role is the highest of their role groups;
superusers and staff are admins; a user in no role group is a researcher (what every user
was before roles existed). What each role may do is the matrix in docs/governance.md:

- viewer: reads their own jobs and logs; may not submit, cancel or create API keys.
- researcher: submits, cancels their own jobs, manages their own API keys.
- lead: also sees every user's jobs and approves or rejects held submissions.
- admin: staff. Configuration endpoints keep asking Django's permissions (staff status and
  the model permission, cloudops.permissions), exactly as the admin site does.

The role is read once per user object and kept on it. An API key is loaded with its user's
role in the same query (`user_annotations`, wired by settings.USER_ANNOTATIONS), so an
authenticated read costs no extra query; a session user costs one, on first use.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from django.db.models import Case, IntegerField, OuterRef, Subquery, Value, When
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView


class Role(IntEnum):
    VIEWER = 1
    RESEARCHER = 2
    LEAD = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()


ROLE_GROUPS = {role.label: role for role in Role}
# Where a user object keeps the name of its highest role group ("" for none).
_GROUP_ATTR = "_governance_role_group"
# What each role may not do, by the action names views ask about.
_REFUSED: dict[str, Role] = {
    "submit_job": Role.RESEARCHER,
    "cancel_job": Role.RESEARCHER,
    "create_api_key": Role.RESEARCHER,
}


def parse_role(name: str) -> Role | None:
    return ROLE_GROUPS.get(name)


def _highest_group_subquery(user_ref: str) -> Subquery:
    """The name of the user's highest role group, as a scalar subquery (NULL for none)."""
    from django.contrib.auth.models import Group

    rank = Case(
        *(When(name=name, then=Value(int(role))) for name, role in ROLE_GROUPS.items()), output_field=IntegerField()
    )
    groups = Group.objects.filter(user=OuterRef(user_ref), name__in=ROLE_GROUPS).annotate(rank=rank)
    return Subquery(groups.order_by("-rank").values("name")[:1])


def user_annotations(user_path: str) -> dict[str, Subquery]:
    """Columns to load with a user reached through `user_path` ("" for the user row itself,
    "owner" for an API key's owner), named as the user object keeps them (`remember`)."""
    return {_GROUP_ATTR: _highest_group_subquery(f"{user_path}__pk" if user_path else "pk")}


def remember(user: Any, name: str, value: Any) -> None:
    """Keep a value loaded by `user_annotations` on the user object."""
    user.__dict__[name] = value or ""


def group_role(user: Any) -> Role | None:
    """The user's highest role group (None: in none): one query, once per user object."""
    name = user.__dict__.get(_GROUP_ATTR)
    if name is None:
        found = user.groups.filter(name__in=ROLE_GROUPS).values_list("name", flat=True)
        name = max(found, key=lambda n: ROLE_GROUPS[n], default="")
        user.__dict__[_GROUP_ATTR] = name
    return ROLE_GROUPS.get(name)


def role_of(user: Any) -> Role:
    """The user's role: superusers and staff are admins, else the highest role group, else
    researcher. Superusers and staff cost no query."""
    if user.is_superuser or user.is_staff:
        return Role.ADMIN
    return group_role(user) or Role.RESEARCHER


def role_name(user: Any) -> str:
    return role_of(user).label


def grants_all_jobs(user: Any) -> bool:
    """Leads and admins by role group see every user's jobs (staff do through providers.view_job)."""
    role = group_role(user)
    return role is not None and role >= Role.LEAD


def action_refusal(user: Any, action: str) -> str | None:
    """Why `user`'s role may not do `action` (a message naming the role), or None."""
    needed = _REFUSED.get(action)
    role = role_of(user)
    if needed is None or role >= needed:
        return None
    return f"Your role ({role.label}) may not {action.replace('_', ' ')}; it needs the {needed.label} role or above."


class RoleAtLeast(BasePermission):
    """DRF permission: authenticated users whose role is at least `role`.
    Use `RoleAtLeast.of(Role.LEAD)` in `permission_classes`; refusals name the role."""

    role = Role.RESEARCHER

    @classmethod
    def of(cls, role: Role) -> type[RoleAtLeast]:
        return type(f"RoleAtLeast({role.label})", (cls,), {"role": role})

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        actual = role_of(user)
        self.message = f"Your role ({actual.label}) may not do this; it needs the {self.role.label} role or above."
        return actual >= self.role


# Which model permission a staff user needs for each method on approval rules (the admin's rule).
_RULE_PERMS = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


class RulesAdmin(BasePermission):
    """Approval rules are the admins': members of the `admin` group, and staff holding the
    approval rule permission the admin site would ask for the same action."""

    model = "approvalrule"
    what = "approval rules"

    def has_permission(self, request: Request, view: APIView) -> bool:
        from cloudops.permissions import has_staff_perm

        user = request.user
        if not (user and user.is_authenticated):
            return False
        if group_role(user) is Role.ADMIN:
            return True
        perm = f"governance.{_RULE_PERMS.get((request.method or '').upper(), 'change')}_{self.model}"
        self.message = (
            f"Your role ({role_of(user).label}) may not manage {self.what}: it takes the admin group, "
            f"or staff status and the {perm} permission."
        )
        return has_staff_perm(user, perm)


class QuotasAdmin(RulesAdmin):
    """Quotas: every authenticated user reads (their own limits and usage, governance.quota_views);
    changes are the admins', as for approval rules."""

    model = "quota"
    what = "quotas"

    def has_permission(self, request: Request, view: APIView) -> bool:
        if (request.method or "").upper() in ("GET", "HEAD", "OPTIONS"):
            return bool(request.user and request.user.is_authenticated)
        return super().has_permission(request, view)


def manages_quotas(user: Any) -> bool:
    """Whether `user` sees every quota (admins by group, staff with the view permission)."""
    from cloudops.permissions import has_staff_perm

    return group_role(user) is Role.ADMIN or has_staff_perm(user, "governance.view_quota")
