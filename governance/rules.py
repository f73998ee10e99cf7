"""Approval rules: what a rule's fields may hold, and which rule holds a submission.

Evaluation happens at submission (providers.submit calls `submission_hold`), before the job
is recorded: the enabled rules in ascending priority (then id), skipping rules for another
provider and rules that exempt the submitter's role; the first that matches holds the job.

`cost_exceeds` compares an estimate, not a bill: the price per second of the job's hardware
(the provider's price table with the operator's overrides, providers.costs.hardware_table)
times its run time, which is the `max_runtime_minutes` the job's config declares, else
SIMPLETUNER_APPROVAL_DEFAULT_RUNTIME_MINUTES (the runtime assumed for every provider when a
job declares none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from rest_framework.exceptions import ValidationError

from governance.models import ApprovalRule, RuleCondition
from governance.roles import ROLE_GROUPS, role_of
from providers.base import HardwareOption
from providers.models import Job
from providers.registry import provider_names

# Hardware ids are short names: a glob is letters, digits, `-_.:/` and the wildcards `*?[]!`.
_GLOB = re.compile(r"^[A-Za-z0-9_.:/*?!\[\]-]{1,64}\Z")
MAX_COST_THRESHOLD = Decimal("1000000000")
MAX_JOBS_THRESHOLD = 10**9
MAX_RUNTIME_MINUTES = 60 * 24 * 365


def _glob_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return 'hardware_type takes a glob string (e.g. "gpu-a100*").'
    if not _GLOB.match(value):
        return f"{value!r} is not a valid glob: 1 to 64 of letters, digits, - _ . : / and the wildcards * ? [ ] !"
    depth = 0
    for char in value:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth not in (0, 1):
            return f"{value!r} is not a valid glob: brackets must pair up and not nest."
    return None if depth == 0 else f"{value!r} is not a valid glob: a [ is never closed."


def _number_problem(value: Any, *, integer: bool, condition: str) -> str | None:
    kind = "a whole number of jobs" if integer else "a number of USD"
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        return f"{condition} takes {kind}, not {type(value).__name__ if value is not None else 'null'}."
    bound = MAX_JOBS_THRESHOLD if integer else MAX_COST_THRESHOLD
    if not 0 <= value <= bound:
        return f"{condition} takes {kind} from 0 to {bound}."
    return None


def threshold_problem(condition: str, threshold: Any) -> str | None:
    """Why `threshold` does not fit `condition` (a message for the `threshold` field), or None."""
    if condition == RuleCondition.COST_EXCEEDS:
        return _number_problem(threshold, integer=False, condition=condition)
    if condition == RuleCondition.DAILY_JOBS_EXCEED:
        return _number_problem(threshold, integer=True, condition=condition)
    if condition == RuleCondition.HARDWARE_TYPE:
        return _glob_problem(threshold)
    if condition == RuleCondition.PROVIDER:
        if not isinstance(threshold, str) or threshold not in provider_names():
            return f"provider takes a provider name: one of {', '.join(provider_names())}."
        return None
    return None if threshold is None else "first_job takes no threshold (send null or leave it out)."


def exempt_levels_problem(levels: Any) -> str | None:
    if not isinstance(levels, list) or not all(isinstance(level, str) for level in levels):
        return "a list of role names."
    unknown = [level for level in levels if level not in ROLE_GROUPS]
    if unknown:
        return f"unknown role {unknown[0]!r} (roles: {', '.join(ROLE_GROUPS)})."
    return None


# --- Evaluation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hold:
    """The rule that holds a submission, and why, in words the submitter is shown."""

    rule: ApprovalRule
    reason: str


def runtime_minutes(config: dict[str, Any]) -> float:
    """The job's declared run time, else the default (a bad value is the submitter's 400)."""
    declared = config.get("max_runtime_minutes")
    if declared is None:
        return float(settings.SIMPLETUNER_APPROVAL_DEFAULT_RUNTIME_MINUTES)
    if isinstance(declared, bool) or not isinstance(declared, int | float) or not 0 < declared <= MAX_RUNTIME_MINUTES:
        raise ValidationError(
            {"config": [f"max_runtime_minutes must be a number of minutes from 0 to {MAX_RUNTIME_MINUTES}."]}
        )
    return float(declared)


def cost_estimate(option: HardwareOption, config: dict[str, Any]) -> Decimal:
    seconds = Decimal(str(runtime_minutes(config))) * 60
    return (Decimal(str(option.price_per_second)) * seconds).quantize(Decimal("0.01"))


def _today(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _match(
    rule: ApprovalRule, *, owner: User, provider: str, option: HardwareOption, config: dict[str, Any], now: datetime
) -> str | None:
    """Why `rule` holds this submission, or None if it does not."""
    condition, threshold = rule.condition, rule.threshold
    if condition == RuleCondition.COST_EXCEEDS:
        estimate = cost_estimate(option, config)
        if estimate > Decimal(str(threshold)):
            return f"estimated cost ${estimate} (hardware {option.id} for {runtime_minutes(config):g} min) exceeds ${threshold}"
    elif condition == RuleCondition.HARDWARE_TYPE:
        if fnmatchcase(option.id, str(threshold)):
            return f"hardware {option.id} matches {threshold}"
    elif condition == RuleCondition.PROVIDER:
        if provider == threshold:
            return f"submissions to {provider} need approval"
    elif condition == RuleCondition.FIRST_JOB:
        if not Job.objects.filter(owner=owner).exists():
            return f"first job of {owner.get_username()}"
    elif condition == RuleCondition.DAILY_JOBS_EXCEED:
        today = Job.objects.filter(owner=owner, created_at__gte=_today(now)).count()
        if today + 1 > int(threshold or 0):
            return f"job {today + 1} of {owner.get_username()} today exceeds {threshold}"
    return None


def submission_hold(
    *, owner: User, provider: str, option: HardwareOption, config: dict[str, Any], now: datetime
) -> Hold | None:
    """The first enabled rule, in priority order, that holds this submission (None: none)."""
    rules = [
        rule
        for rule in ApprovalRule.objects.filter(enabled=True).order_by("priority", "id")
        if not rule.applies_to_provider or rule.applies_to_provider == provider
    ]
    # One query while no rule applies; the role (at most one more) only when one does.
    role = role_of(owner).label if rules else ""
    for rule in rules:
        if role in (rule.exempt_levels or []):
            continue
        reason = _match(rule, owner=owner, provider=provider, option=option, config=config, now=now)
        if reason is not None:
            return Hold(rule=rule, reason=f"{rule.name}: {reason}"[:500])
    return None
