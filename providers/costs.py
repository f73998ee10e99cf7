"""Hardware price tables, job costs and per-provider cost limits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Sum
from django.utils import timezone
from rest_framework.exceptions import APIException, ValidationError

from cloudops import notify
from providers.base import HardwareOption
from providers.models import CostLimitAction, CostLimitPeriod, Job, ProviderConfig
from providers.registry import get_provider

# Warn when a cost limit is this far used, before it is reached.
APPROACHING_PERCENT = 80.0


class CostLimitExceeded(APIException):
    status_code = 402
    default_code = "cost_limit_exceeded"


def hardware_table(provider_config: ProviderConfig) -> dict[str, HardwareOption]:
    """The provider's default prices with the operator's overrides (`hardware`) on top."""
    table = dict(get_provider(provider_config.name).hardware_defaults())
    for hw_id, entry in (provider_config.hardware or {}).items():
        label = entry.get("label") or (table[hw_id].label if hw_id in table else hw_id)
        table[hw_id] = HardwareOption(id=hw_id, label=label, price_per_second=float(entry["price_per_second"]))
    return table


def resolve_hardware(provider_config: ProviderConfig, requested: str) -> HardwareOption:
    table = hardware_table(provider_config)
    hw_id = requested or provider_config.default_hardware or get_provider(provider_config.name).default_hardware
    if hw_id not in table:
        known = ", ".join(sorted(table))
        raise ValidationError({"hardware": [f"{hw_id!r} is not offered by {provider_config.name} (known: {known})."]})
    return table[hw_id]


def job_cost(*, job: Job, run_seconds: float, provider_config: ProviderConfig) -> Decimal:
    """Provider-reported run time x the price of the job's own hardware."""
    option = hardware_table(provider_config).get(job.hardware)
    price = Decimal(str(option.price_per_second)) if option is not None else Decimal("0")
    return (price * Decimal(str(run_seconds))).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class CostLimitStatus:
    provider: str
    enabled: bool
    amount_usd: Decimal
    period: str
    action: str
    period_start: datetime
    spent_usd: Decimal

    @property
    def percent_used(self) -> float:
        """Share of the amount spent (simpletuner_cost_limit_percent_used); 0 without an amount."""
        if self.amount_usd <= 0:
            return 0.0
        return round(float(self.spent_usd / self.amount_usd * 100), 2)

    def as_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "amount_usd": str(self.amount_usd),
            "period": self.period,
            "action": self.action,
            "period_start": self.period_start.isoformat(),
            "spent_usd": str(self.spent_usd.quantize(Decimal("0.01"))),
            "percent_used": self.percent_used,
        }


def period_start(period: str, now: datetime) -> datetime:
    """Start of the current calendar period in UTC (weeks start on Monday)."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == CostLimitPeriod.DAILY:
        return day
    if period == CostLimitPeriod.WEEKLY:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def cost_limit_status(provider_config: ProviderConfig, *, now: datetime | None = None) -> CostLimitStatus:
    """Spend of the provider's jobs completed in the current period (cost is known at completion)."""
    start = period_start(provider_config.cost_limit_period, now or timezone.now())
    spent = Job.objects.filter(provider=provider_config.name, completed_at__gte=start).aggregate(total=Sum("cost_usd"))
    return CostLimitStatus(
        provider=provider_config.name,
        enabled=provider_config.cost_limit_enabled,
        amount_usd=provider_config.cost_limit_amount,
        period=provider_config.cost_limit_period,
        action=provider_config.cost_limit_action,
        period_start=start,
        spent_usd=spent["total"] or Decimal("0"),
    )


def cost_limit_check(provider_config: ProviderConfig, *, now: datetime | None = None) -> list[str]:
    """Warnings for a new submission; raises CostLimitExceeded when the limit blocks it."""
    if not provider_config.cost_limit_enabled:
        return []  # no spend query on the submit path while limits are off (the default)
    status = cost_limit_status(provider_config, now=now)
    spent = f"${status.spent_usd:.2f} of ${status.amount_usd:.2f} ({status.period})"
    if status.spent_usd >= status.amount_usd:
        _announce(notify.COST_EXCEEDED, provider_config.name, status)
        if status.action == CostLimitAction.BLOCK:
            raise CostLimitExceeded(
                f"Cost limit reached for {provider_config.name}: {spent}. New jobs are blocked until the period "
                "ends or a staff user raises cost_limit_amount."
            )
        return [f"Cost limit exceeded for {provider_config.name}: {spent}."]
    if status.percent_used >= APPROACHING_PERCENT:
        _announce(notify.COST_WARNING, provider_config.name, status)
        return [f"{provider_config.name} has used {status.percent_used:.0f}% of its cost limit: {spent}."]
    return []


def _announce(event_type: str, provider: str, status: CostLimitStatus) -> None:
    """The cost notification, once per provider and period (cloudops.notify's dedup_key)."""
    key = f"{event_type}:{provider}:{status.period_start.date()}"
    notify.notify(event_type, {"provider": provider, **status.as_dict()}, dedup_key=key)
