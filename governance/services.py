"""Approval rule services: called alike by the API and the admin, each change audited."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest

from cloudops.auditing import Actor, config_changed
from governance.models import ApprovalRule


def _audit(rule: ApprovalRule, action: str, request: HttpRequest | None, details: dict[str, Any]) -> None:
    config_changed(
        target_type="approval_rule",
        target_id=rule.pk,
        action=action,
        details={"rule": rule.name, **details},
        request=request,
    )


def approval_rule_create(*, values: dict[str, Any], request: HttpRequest | None = None) -> ApprovalRule:
    with transaction.atomic():
        rule = ApprovalRule.objects.create(updated_by=Actor.from_request(request).username, **values)
        _audit(rule, "create", request, {"changes": sorted(values)})
    return rule


def approval_rule_update(
    *, rule: ApprovalRule, changes: dict[str, Any], request: HttpRequest | None = None
) -> ApprovalRule:
    with transaction.atomic():
        for name, value in changes.items():
            setattr(rule, name, value)
        rule.updated_by = Actor.from_request(request).username
        rule.save()
        _audit(rule, "update", request, {"changes": sorted(changes)})
    return rule


def approval_rule_delete(*, rule: ApprovalRule, request: HttpRequest | None = None) -> None:
    with transaction.atomic():
        _audit(rule, "delete", request, {})
        rule.delete()
