"""Approval rules and the requests they raise (docs/governance.md)."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils import timezone


class RuleCondition(models.TextChoices):
    COST_EXCEEDS = "cost_exceeds"
    HARDWARE_TYPE = "hardware_type"
    PROVIDER = "provider"
    FIRST_JOB = "first_job"
    DAILY_JOBS_EXCEED = "daily_jobs_exceed"


class ApproverLevel(models.TextChoices):
    LEAD = "lead"
    ADMIN = "admin"


class ApprovalRule(models.Model):
    """A condition that holds a submission for approval (governance.rules evaluates them).

    `threshold` depends on the condition: a number of USD (cost_exceeds), a glob over hardware
    ids (hardware_type), a provider name (provider), a number of jobs (daily_jobs_exceed), or
    nothing (first_job). Rules are evaluated in ascending `priority` (then id); the first
    enabled rule that matches and does not exempt the submitter's role holds the job.
    """

    name = models.CharField(max_length=100, unique=True)
    condition = models.CharField(max_length=32, choices=RuleCondition.choices)
    threshold = models.JSONField(null=True, blank=True)
    applies_to_provider = models.CharField(
        max_length=32, blank=True, default="", help_text="empty: submissions to every provider"
    )
    required_approver_level = models.CharField(max_length=8, choices=ApproverLevel.choices, default=ApproverLevel.LEAD)
    exempt_levels = models.JSONField(default=list, blank=True, help_text="roles the rule does not hold")
    priority = models.IntegerField(default=100, help_text="lower first")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return self.name


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ApprovalRequest(models.Model):
    """A held submission waiting for a decision. Decisions are a conditional UPDATE from
    `pending` (governance.approvals): of two racing deciders exactly one wins."""

    job = models.OneToOneField("providers.Job", on_delete=models.CASCADE, related_name="approval")
    rule = models.ForeignKey(ApprovalRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="requests")
    # Copied from the rule when the job was held: editing or deleting the rule later does
    # not change who may decide, nor what the submitter was told.
    rule_name = models.CharField(max_length=100)
    required_level = models.CharField(max_length=8, choices=ApproverLevel.choices)
    reason = models.CharField(max_length=500)
    status = models.CharField(max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=150, blank=True, default="")
    decision_reason = models.CharField(max_length=1000, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="approval_status_created"),
            models.Index(fields=["status", "expires_at"], name="approval_status_expires"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}: {self.status}"


class QuotaScope(models.TextChoices):
    GLOBAL = "global"
    GROUP = "group"
    USER = "user"


class QuotaType(models.TextChoices):
    CONCURRENT_JOBS = "concurrent_jobs"
    JOBS_PER_DAY = "jobs_per_day"
    MONTHLY_SPEND_USD = "monthly_spend_usd"


COUNT_TYPES = frozenset({QuotaType.CONCURRENT_JOBS, QuotaType.JOBS_PER_DAY})


def quota_amount(quota_type: str, value: Decimal) -> str:
    """A limit or a usage as messages print it: jobs as a whole number ("2", never "2.00":
    count limits are whole, governance.quota_services), dollars with their cents ("100.00")."""
    if quota_type in COUNT_TYPES:
        return str(int(value))
    return f"{value:.2f}"


class QuotaAction(models.TextChoices):
    WARN = "warn"
    BLOCK = "block"
    QUEUE = "queue"


class Quota(models.Model):
    """A limit on each user it applies to (governance.quotas): every user (global), each
    member of a group, or one user. A user's effective limit of a type is the lowest of the
    quotas that apply to them; a group or user quota above the global one is refused when set
    (the global quota is the ceiling). `queue` is for concurrent_jobs only."""

    scope = models.CharField(max_length=8, choices=QuotaScope.choices)
    target = models.CharField(max_length=150, blank=True, default="", help_text="username, group name, or empty")
    quota_type = models.CharField(max_length=20, choices=QuotaType.choices)
    limit = models.DecimalField(max_digits=12, decimal_places=2)
    action = models.CharField(max_length=8, choices=QuotaAction.choices, default=QuotaAction.BLOCK)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["scope", "target", "quota_type"]
        constraints = [
            models.UniqueConstraint(fields=["scope", "target", "quota_type"], name="quota_scope_target_type"),
        ]

    def __str__(self) -> str:
        who = f"{self.scope} {self.target}".strip()
        return f"{who}: {self.quota_type} {quota_amount(self.quota_type, self.limit)} ({self.action})"
