"""Approval rules and requests in the admin: rules checked like the API checks them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from governance.models import ApprovalRequest, ApprovalRule
from governance.rules import exempt_levels_problem, threshold_problem
from providers.registry import provider_names


class ApprovalRuleForm(forms.ModelForm):
    class Meta:
        model = ApprovalRule
        fields = [
            "name",
            "condition",
            "threshold",
            "applies_to_provider",
            "required_approver_level",
            "exempt_levels",
            "priority",
            "enabled",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        problem = threshold_problem(str(data.get("condition", "")), data.get("threshold"))
        if problem and "condition" in data:
            self.add_error("threshold", problem)
        levels = exempt_levels_problem(data.get("exempt_levels", []))
        if levels:
            self.add_error("exempt_levels", levels)
        provider = data.get("applies_to_provider", "")
        if provider and provider not in provider_names():
            self.add_error("applies_to_provider", f"unknown provider {provider!r}.")
        return data


@admin.register(ApprovalRule)
class ApprovalRuleAdmin(admin.ModelAdmin):
    form = ApprovalRuleForm
    list_display = [
        "name",
        "condition",
        "threshold",
        "applies_to_provider",
        "required_approver_level",
        "priority",
        "enabled",
    ]
    list_filter = ["enabled", "condition"]
    ordering = ["priority", "id"]


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin):
    list_display = ["job", "rule_name", "required_level", "status", "created_at", "expires_at", "decided_by"]
    list_filter = ["status"]
    list_select_related = ["job"]
    readonly_fields = [field.name for field in ApprovalRequest._meta.fields]

    def has_add_permission(self, request: Any) -> bool:
        return False
