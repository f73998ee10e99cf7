"""Setting quotas: the checks a quota must pass (API and admin alike) and the audited changes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.http import HttpRequest

from cloudops.auditing import Actor, config_changed
from governance.models import COUNT_TYPES, Quota, QuotaAction, QuotaScope, QuotaType, quota_amount
from governance.quotas import quota_data

MAX_LIMIT = Decimal("1000000000")


def _target_problem(scope: str, target: str) -> str | None:
    if scope == QuotaScope.GLOBAL:
        return None if not target else "a global quota has no target: leave it empty."
    if not target:
        return f"a {scope} quota needs a target: the {'username' if scope == QuotaScope.USER else 'group name'}."
    if scope == QuotaScope.USER and not User.objects.filter(username=target).exists():
        return f"no user named {target!r}."
    if scope == QuotaScope.GROUP and not Group.objects.filter(name=target).exists():
        return f"no group named {target!r}."
    return None


def _limit_problem(quota_type: str, limit: Any) -> str | None:
    if not isinstance(limit, Decimal) or not limit.is_finite():
        return "a number."
    if not 0 <= limit <= MAX_LIMIT:
        return f"from 0 to {MAX_LIMIT}."
    if quota_type in COUNT_TYPES and limit != limit.to_integral_value():
        return f"{quota_type} takes a whole number of jobs."
    return None


def _ceiling_problem(values: dict[str, Any], pk: int | None) -> str | None:
    """A group or user quota above the global one of its type (the global quota is the ceiling)."""
    if values["scope"] == QuotaScope.GLOBAL:
        return None
    ceiling = Quota.objects.filter(scope=QuotaScope.GLOBAL, quota_type=values["quota_type"]).exclude(pk=pk or 0).first()
    if ceiling is not None and values["limit"] > ceiling.limit:
        kind = values["quota_type"]
        return (
            f"{quota_amount(kind, values['limit'])} is above the global {kind} quota "
            f"({quota_amount(kind, ceiling.limit)}), "
            "which is the ceiling for every user: raise the global quota first."
        )
    return None


def quota_problems(values: dict[str, Any], *, pk: int | None = None) -> dict[str, str]:
    """{field: why} for a quota's complete values (scope, target, quota_type, limit, action);
    `pk` is the quota being changed, if any. Empty: the quota may be saved."""
    problems: dict[str, str] = {}
    target = _target_problem(values["scope"], values["target"])
    if target:
        problems["target"] = target
    if values["action"] == QuotaAction.QUEUE and values["quota_type"] != QuotaType.CONCURRENT_JOBS:
        problems["action"] = "queue applies to concurrent_jobs only (a job waits for a slot to free)."
    limit = _limit_problem(values["quota_type"], values["limit"])
    if limit:
        problems["limit"] = limit
    elif ceiling := _ceiling_problem(values, pk):
        problems["limit"] = ceiling
    twin = Quota.objects.filter(scope=values["scope"], target=values["target"], quota_type=values["quota_type"])
    if not problems and twin.exclude(pk=pk or 0).exists():
        problems["quota_type"] = (
            f"a {values['scope']} {values['quota_type']} quota for {values['target'] or 'everyone'} "
            "exists already: change that one."
        )
    return problems


def _audit(quota: Quota, action: str, request: HttpRequest | None, details: dict[str, Any]) -> None:
    config_changed(
        target_type="quota",
        target_id=quota.pk,
        action=action,
        details={"quota": quota_data(quota), **details},
        request=request,
    )


def quota_create(*, values: dict[str, Any], request: HttpRequest | None = None) -> Quota:
    with transaction.atomic():
        quota = Quota.objects.create(updated_by=Actor.from_request(request).username, **values)
        _audit(quota, "create", request, {})
    return quota


def quota_update(*, quota: Quota, changes: dict[str, Any], request: HttpRequest | None = None) -> Quota:
    before = quota_data(quota)
    with transaction.atomic():
        for name, value in changes.items():
            setattr(quota, name, value)
        quota.updated_by = Actor.from_request(request).username
        quota.save()
        _audit(quota, "update", request, {"before": before, "changes": sorted(changes)})
    return quota


def quota_delete(*, quota: Quota, request: HttpRequest | None = None) -> None:
    with transaction.atomic():
        _audit(quota, "delete", request, {})
        quota.delete()
