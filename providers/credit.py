"""Prepaid credit per provider: the amount an admin set, minus what jobs cost since.

Neither provider reports a balance of its own: `local` costs what its price table says, and
Replicate's API has no public balance endpoint (its `GET /v1/account` names the account, no
credit), so the balance is kept here. An admin sets `credit_balance_usd` to what the provider
account holds now (the API or the admin stamps `credit_balance_set_at`); every job of the
provider completed from then on (any end status: a failed run is billed too, as in the cost
limit) is subtracted at its recorded cost. A job still running when the amount was set counts
when it ends. `credit_low_usd` is the mark at or below which the provider's health component is
degraded (providers.health) and submissions to it carry a warning (providers.submit).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Sum

from cloudops import notify
from cloudops.health import Component, Status
from providers.models import Job, ProviderConfig


@dataclass(frozen=True)
class CreditStatus:
    provider: str
    amount_usd: Decimal
    set_at: datetime | None
    spent_usd: Decimal
    low_usd: Decimal

    @property
    def balance_usd(self) -> Decimal:
        return self.amount_usd - self.spent_usd

    @property
    def low(self) -> bool:
        return self.balance_usd <= self.low_usd

    def describe(self) -> str:
        return f"${self.balance_usd:.2f} (low mark ${self.low_usd:.2f})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "amount_usd": float(self.amount_usd),
            # As DRF shows `credit_balance_set_at` next to it: UTC with a Z.
            "set_at": self.set_at.isoformat().replace("+00:00", "Z") if self.set_at else None,
            "spent_since_usd": float(self.spent_usd.quantize(Decimal("0.01"))),
            "balance_usd": float(self.balance_usd.quantize(Decimal("0.01"))),
            "low_usd": float(self.low_usd),
            "low": self.low,
        }


def credit_status(provider_config: ProviderConfig) -> CreditStatus | None:
    """The provider's balance now, or None when no credit is tracked (the default)."""
    if provider_config.credit_balance_usd is None:
        return None
    jobs = Job.objects.filter(provider=provider_config.name)
    if provider_config.credit_balance_set_at is not None:
        jobs = jobs.filter(completed_at__gte=provider_config.credit_balance_set_at)
    spent = jobs.filter(completed_at__isnull=False).aggregate(total=Sum("cost_usd"))["total"]
    return CreditStatus(
        provider=provider_config.name,
        amount_usd=provider_config.credit_balance_usd,
        set_at=provider_config.credit_balance_set_at,
        spent_usd=spent or Decimal("0"),
        low_usd=provider_config.credit_low_usd,
    )


def credit_warnings(provider_config: ProviderConfig) -> list[str]:
    """The warning a submission to a provider low on credit carries (it is not refused: the
    provider itself refuses work when the account is empty, and the amount here is an estimate)."""
    status = credit_status(provider_config)
    if status is None or not status.low:
        return []
    # Once per balance set (a new balance can go low again).
    data = {"provider": provider_config.name, **status.as_dict()}
    notify.notify(notify.CREDIT_LOW, data, dedup_key=f"credit.low:{provider_config.name}:{status.set_at}")
    return [f"{provider_config.name} is low on credit: {status.describe()}."]


def with_credit(component: Component, provider_config: ProviderConfig) -> Component:
    """The provider's health component, degraded (never better than it was) when its credit is
    at or below the low mark, with the reason in its message and the balance in its details."""
    status = credit_status(provider_config)
    if status is None:
        return component
    details = {**component.details, "credit": status.as_dict()}
    if not status.low:
        return dataclasses.replace(component, details=details)
    worst: Status = "unhealthy" if component.status == "unhealthy" else "degraded"
    message = f"{component.message}; credit low: {status.describe()}"
    return dataclasses.replace(component, status=worst, message=message, details=details)
