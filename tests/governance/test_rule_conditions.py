"""Each rule condition, evaluated as a submission is (governance.rules.submission_hold):
priority order, the provider a rule applies to, exempt roles, and the cost estimate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import override_settings
from rest_framework.exceptions import ValidationError

from governance.models import ApprovalRule
from governance.rules import cost_estimate, submission_hold
from providers.base import HardwareOption
from providers.models import Job

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
A100 = HardwareOption(id="gpu-a100-large", label="A100", price_per_second=0.001)  # $3.60 an hour
T4 = HardwareOption(id="gpu-t4", label="T4", price_per_second=0.000225)


def rule(name: str, condition: str, threshold: Any = None, **fields: Any) -> ApprovalRule:
    return ApprovalRule.objects.create(name=name, condition=condition, threshold=threshold, **fields)


def hold(owner: AbstractUser, option: HardwareOption = A100, provider: str = "replicate", **config: Any) -> str | None:
    found = submission_hold(owner=owner, provider=provider, option=option, config=config, now=NOW)
    return found.rule.name if found else None


def test_no_rules_hold_nothing(alice: AbstractUser) -> None:
    assert hold(alice) is None


def test_cost_exceeds_uses_the_declared_runtime(alice: AbstractUser) -> None:
    rule("spend", "cost_exceeds", 5)
    assert hold(alice, max_runtime_minutes=60) is None  # $3.60
    assert hold(alice, max_runtime_minutes=120) == "spend"  # $7.20


@override_settings(SIMPLETUNER_APPROVAL_DEFAULT_RUNTIME_MINUTES=240)
def test_cost_exceeds_uses_the_default_runtime_when_none_is_declared(alice: AbstractUser) -> None:
    rule("spend", "cost_exceeds", 10)
    assert cost_estimate(A100, {}) == Decimal("14.40")
    assert hold(alice) == "spend"
    assert hold(alice, option=T4) is None  # $3.24


def test_a_bad_declared_runtime_is_the_submitters_400(alice: AbstractUser) -> None:
    rule("spend", "cost_exceeds", 5)
    with pytest.raises(ValidationError) as raised:
        hold(alice, max_runtime_minutes="long")
    assert "max_runtime_minutes" in str(raised.value.detail)


def test_hardware_type_matches_a_glob(alice: AbstractUser) -> None:
    rule("a100s", "hardware_type", "gpu-a100*")
    assert hold(alice) == "a100s"
    assert hold(alice, option=T4) is None


def test_provider_matches_the_provider_name(alice: AbstractUser) -> None:
    rule("cloud", "provider", "replicate")
    assert hold(alice) == "cloud"
    assert hold(alice, provider="local") is None


def test_first_job_holds_only_a_users_first(alice: AbstractUser) -> None:
    rule("newcomer", "first_job")
    assert hold(alice) == "newcomer"
    Job.objects.create(owner=alice, provider="local", created_at=NOW - timedelta(days=300))
    assert hold(alice) is None


def test_daily_jobs_exceed_counts_todays_jobs(alice: AbstractUser) -> None:
    rule("busy", "daily_jobs_exceed", 2)
    Job.objects.create(owner=alice, provider="local", created_at=NOW - timedelta(days=1))
    Job.objects.create(owner=alice, provider="local", created_at=NOW - timedelta(hours=1))
    assert hold(alice) is None  # this would be her second today
    Job.objects.create(owner=alice, provider="local", created_at=NOW - timedelta(minutes=1))
    assert hold(alice) == "busy"  # and this her third


def test_rules_are_evaluated_in_priority_order(alice: AbstractUser) -> None:
    rule("later", "provider", "replicate", priority=20)
    rule("sooner", "hardware_type", "gpu-*", priority=5)
    assert hold(alice) == "sooner"


def test_a_disabled_rule_holds_nothing(alice: AbstractUser) -> None:
    rule("off", "provider", "replicate", enabled=False)
    assert hold(alice) is None


def test_a_rule_for_another_provider_is_skipped(alice: AbstractUser) -> None:
    rule("local only", "first_job", applies_to_provider="local")
    assert hold(alice) is None
    assert hold(alice, provider="local") == "local only"


def test_exempt_roles_pass_and_the_next_rule_is_tried(alice: AbstractUser, lena: AbstractUser) -> None:
    rule("researchers", "first_job", exempt_levels=["lead", "admin"], priority=1)
    rule("everyone", "provider", "replicate", priority=2)
    assert hold(alice) == "researchers"
    assert hold(lena) == "everyone"
