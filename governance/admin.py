"""Approval rules and requests in the admin: rules checked like the API checks them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from cloudops.admin_confirm import act_on_each, action_hidden, confirm_page, confirmed
from governance.approvals import approval_approve, approval_reject
from governance.models import ApprovalRequest, ApprovalRule, ApprovalStatus, Quota, quota_amount
from governance.quota_services import quota_problems
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


class RejectReasonForm(forms.Form):
    """The reason typed on the reject confirmation page (as the API's: at most 1000 characters)."""

    reason = forms.CharField(required=False, max_length=1000)


def _decide(
    admin_: admin.ModelAdmin, request: HttpRequest, rows: QuerySet[ApprovalRequest], decide: Any, reason: str
) -> None:
    """Apply one decision per selected request, as the API would; refusals are reported."""
    act_on_each(
        admin_,
        request,
        rows.select_related("job", "job__owner"),
        lambda approval: decide(approval=approval, user=request.user, reason=reason, request=request),
        done="request(s) decided",
        label=lambda approval: f"Request {approval.pk}",
    )


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin):
    actions = ["approve", "reject"]
    list_display = ["job", "rule_name", "required_level", "status", "created_at", "expires_at", "decided_by"]
    list_filter = ["status"]
    list_select_related = ["job"]
    readonly_fields = [field.name for field in ApprovalRequest._meta.fields]

    def has_add_permission(self, request: Any) -> bool:
        return False

    @admin.action(description="Approve the selected requests (submits their jobs)", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> None:
        _decide(self, request, queryset, approval_approve, "from the admin")

    @admin.action(description="Reject the selected requests (cancels their jobs)…", permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> HttpResponse | None:
        """Asks for a reason first (the submitter reads it on their cancelled job), then rejects."""
        if not confirmed(request):
            pending = [row for row in queryset if row.status == ApprovalStatus.PENDING]
            return confirm_page(
                self,
                request,
                title="Reject approval requests",
                question=f"Reject these {len(pending)} request(s)? Their jobs are cancelled with your reason; "
                "this cannot be undone.",
                objects=[f"{row.job_id} ({row.rule_name})" for row in pending],
                confirm_label="Yes, reject them",
                hidden=action_hidden("reject", (row.pk for row in pending)),
                nothing_to_do="None of the selected requests is pending: there is nothing to reject.",
                reason_label="Reason (the submitter sees it on the cancelled job)",
            )
        form = RejectReasonForm(request.POST)
        if not form.is_valid():
            self.message_user(request, f"Nothing rejected: {form.errors['reason'][0]}", messages.ERROR)
            return None
        _decide(self, request, queryset, approval_reject, form.cleaned_data["reason"].strip())
        return None


class QuotaForm(forms.ModelForm):
    """Checked like the API checks a quota (governance.quota_services.quota_problems)."""

    class Meta:
        model = Quota
        fields = ["scope", "target", "quota_type", "limit", "action"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if all(name in data for name in self.Meta.fields):
            values = {name: data[name] for name in self.Meta.fields}
            for name, why in quota_problems(values, pk=self.instance.pk).items():
                self.add_error(name, why)
        return data


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    form = QuotaForm
    list_display = ["scope", "target", "quota_type", "shown_limit", "action", "updated_at", "updated_by"]
    list_filter = ["scope", "quota_type", "action"]
    ordering = ["scope", "target", "quota_type"]

    @admin.display(description="limit", ordering="limit")
    def shown_limit(self, quota: Quota) -> str:
        return quota_amount(quota.quota_type, quota.limit)
