"""A circuit breaker per provider, shared by every server process through the database.

closed: calls go through; `SIMPLETUNER_CIRCUIT_FAILURE_THRESHOLD` consecutive provider-side
failures open it. open: calls fail fast with CircuitOpenError until
`SIMPLETUNER_CIRCUIT_OPEN_SECONDS` pass. half_open: up to
`SIMPLETUNER_CIRCUIT_HALF_OPEN_PROBES` trial calls at once; one success closes the circuit,
one failure opens it again. A probe whose process died is written off after the open interval.

Every state change is a conditional UPDATE checked by its row count, so concurrent
processes agree on one outcome (e.g. exactly one process wins the open -> half_open move).
`failures_total` only ever grows (the metrics counter).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone

from audit.services import audit_record
from cloudops import audit_events as events
from cloudops import notify
from cloudops.structured_logging import get_logger
from providers.errors import CircuitOpenError
from providers.models import CIRCUIT_STATE_VALUE, CircuitBreaker, CircuitState

logger = get_logger("simpletuner.cloud.providers.circuit")


@dataclass(frozen=True)
class CircuitStatus:
    provider: str
    state: str
    failures_total: int
    consecutive_failures: int
    retry_in_seconds: float | None
    last_error: str

    @property
    def state_value(self) -> int:
        """0 closed, 1 half_open, 2 open (simpletuner_circuit_breaker_state)."""
        return CIRCUIT_STATE_VALUE[CircuitState(self.state)]


def _open_interval() -> timedelta:
    return timedelta(seconds=settings.SIMPLETUNER_CIRCUIT_OPEN_SECONDS)


def _breaker(provider: str) -> CircuitBreaker:
    breaker, _ = CircuitBreaker.objects.get_or_create(provider=provider)
    return breaker


def circuit_before_call(provider: str, *, now: datetime | None = None) -> bool:
    """Admit a call or raise CircuitOpenError. Returns True when the call is a half-open probe."""
    now = now or timezone.now()
    breaker = _breaker(provider)
    if breaker.state == CircuitState.CLOSED:
        return False
    rows = CircuitBreaker.objects.filter(pk=breaker.pk)
    if breaker.state == CircuitState.OPEN:
        reopen_at = (breaker.opened_at or now) + _open_interval()
        if now < reopen_at:
            raise _open_error(provider, (reopen_at - now).total_seconds())
        moved = rows.filter(state=CircuitState.OPEN, opened_at=breaker.opened_at).update(
            state=CircuitState.HALF_OPEN, probes_in_flight=1, probe_started_at=now
        )
        if moved:
            logger.info("circuit half-open, probing", extra={"provider": provider})
            return True
        breaker.refresh_from_db()
    if breaker.state == CircuitState.HALF_OPEN and _take_probe_slot(breaker, now):
        return True
    if breaker.state == CircuitState.CLOSED:
        return False
    raise _open_error(provider, settings.SIMPLETUNER_CIRCUIT_OPEN_SECONDS)


def _take_probe_slot(breaker: CircuitBreaker, now: datetime) -> bool:
    rows = CircuitBreaker.objects.filter(pk=breaker.pk, state=CircuitState.HALF_OPEN)
    stale = breaker.probe_started_at is None or breaker.probe_started_at < now - _open_interval()
    if stale:
        # The probes in flight are older than the open interval: their processes died.
        return bool(
            rows.filter(probe_started_at=breaker.probe_started_at).update(probes_in_flight=1, probe_started_at=now)
        )
    limit = settings.SIMPLETUNER_CIRCUIT_HALF_OPEN_PROBES
    return bool(rows.filter(probes_in_flight__lt=limit).update(probes_in_flight=F("probes_in_flight") + 1))


def _open_error(provider: str, retry_after: float) -> CircuitOpenError:
    retry_after = max(1.0, round(retry_after))
    return CircuitOpenError(
        f"{provider} is failing; calls are paused for {retry_after:.0f} s (circuit breaker open)",
        provider=provider,
        retry_after=retry_after,
    )


def circuit_record_success(provider: str, *, probe: bool) -> None:
    """The provider answered properly (even a 4xx: it is up)."""
    rows = CircuitBreaker.objects.filter(provider=provider)
    if probe:
        closed = rows.filter(state=CircuitState.HALF_OPEN).update(
            state=CircuitState.CLOSED, consecutive_failures=0, probes_in_flight=0, opened_at=None, probe_started_at=None
        )
        if closed:
            logger.info("circuit closed after a successful probe", extra={"provider": provider})
        return
    # Conditional, so the common case (closed, no failures) costs no write.
    rows.filter(state=CircuitState.CLOSED, consecutive_failures__gt=0).update(consecutive_failures=0)


def circuit_record_failure(provider: str, *, probe: bool, error: str, now: datetime | None = None) -> None:
    """A provider-side failure (5xx, unreachable, timeout) after the call's retries."""
    now = now or timezone.now()
    _breaker(provider)
    rows = CircuitBreaker.objects.filter(provider=provider)
    rows.update(
        failures_total=F("failures_total") + 1,
        consecutive_failures=F("consecutive_failures") + 1,
        last_failure_at=now,
        last_error=error[:500],
    )
    if probe:
        opened = rows.filter(state=CircuitState.HALF_OPEN).update(
            state=CircuitState.OPEN, opened_at=now, probes_in_flight=0, probe_started_at=None
        )
    else:
        threshold = settings.SIMPLETUNER_CIRCUIT_FAILURE_THRESHOLD
        opened = rows.filter(state=CircuitState.CLOSED, consecutive_failures__gte=threshold).update(
            state=CircuitState.OPEN, opened_at=now
        )
    if opened:
        logger.warning("circuit opened", extra={"provider": provider, "error": error[:200]})
        data = {"provider": provider, "error": error[:500], "opened_at": now.isoformat().replace("+00:00", "Z")}
        notify.notify(notify.SYSTEM_PROVIDER_ERROR, data)


def circuit_release_probe(provider: str) -> None:
    """A probe ended without telling us anything about the provider (e.g. our TLS config)."""
    CircuitBreaker.objects.filter(provider=provider, state=CircuitState.HALF_OPEN, probes_in_flight__gt=0).update(
        probes_in_flight=F("probes_in_flight") - 1
    )


def circuit_reset(provider: str, *, request: HttpRequest | None = None) -> bool:
    """Close the circuit by hand (admin action); the cumulative failure count is kept.

    Audited (`circuit_breaker.reset`, with the state it left) in the same transaction. A
    circuit already closed with no failures counted changes nothing and writes nothing.
    """
    with transaction.atomic():
        breaker = CircuitBreaker.objects.select_for_update().filter(provider=provider).first()
        idle = {"state": CircuitState.CLOSED, "consecutive_failures": 0, "probes_in_flight": 0}
        if breaker is None or all(getattr(breaker, name) == value for name, value in idle.items()):
            return False
        CircuitBreaker.objects.filter(pk=breaker.pk).update(**idle, opened_at=None, probe_started_at=None)
        audit_record(
            event_type=events.CIRCUIT_BREAKER_RESET,
            request=request,
            target_type="provider",
            target_id=provider,
            action="close",
            details={
                "previous_state": breaker.state,
                "consecutive_failures": breaker.consecutive_failures,
                "failures_total": breaker.failures_total,
            },
        )
    return True


def circuit_snapshot(*, now: datetime | None = None) -> list[CircuitStatus]:
    """Every provider's breaker, for health and metrics. Providers never called are closed."""
    from providers.registry import provider_names

    now = now or timezone.now()
    stored = {b.provider: b for b in CircuitBreaker.objects.filter(Q(provider__in=provider_names()))}
    result = []
    for name in provider_names():
        breaker = stored.get(name) or CircuitBreaker(provider=name)
        retry = None
        if breaker.state == CircuitState.OPEN and breaker.opened_at is not None:
            retry = max(0.0, (breaker.opened_at + _open_interval() - now).total_seconds())
        result.append(
            CircuitStatus(
                provider=name,
                state=breaker.state,
                failures_total=breaker.failures_total,
                consecutive_failures=breaker.consecutive_failures,
                retry_in_seconds=retry,
                last_error=breaker.last_error,
            )
        )
    return result
