"""The contract every provider client implements (local subprocesses, Replicate, ...)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from cloudops.health import Component
    from providers.models import Job, ProviderConfig


# Longest run time believed (about 30 years): a provider's larger or non-finite figure is ignored.
MAX_RUN_SECONDS = 10**9


def run_seconds_of(value: Any) -> float | None:
    """A provider-reported run time as the seconds we store: a number from 0 to
    MAX_RUN_SECONDS, else None (NaN, infinity, negatives, strings, booleans)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_RUN_SECONDS:
        return None
    return float(value)


@dataclass
class RemoteState:
    """What a provider says about a job, in our vocabulary (status is a JobStatus or None)."""

    status: str | None
    error: str = ""
    logs: str | None = None
    run_seconds: float | None = None
    output_url: str = ""
    progress: dict[str, Any] = field(default_factory=dict)
    external_id: str = ""
    # When the provider says the job started / ended (more accurate than when we heard of it).
    started_at: datetime | None = None
    completed_at: datetime | None = None


@dataclass(frozen=True)
class HardwareOption:
    id: str
    label: str
    price_per_second: float


# How a provider reports a phase of a submission before it returns (e.g. "uploading" while a
# dataset uploads): the job service records it as a status change with `reason`.
Phase = Callable[[str, str], None]


@dataclass
class Submitted:
    """What starting a job gave: its state at the provider, warnings for the caller, and for
    a job that runs here, a call that blocks until it has ended (providers.sync watches it)."""

    state: RemoteState
    warnings: list[str] = field(default_factory=list)
    wait: Callable[[], object] | None = None


@dataclass(frozen=True)
class SigningSecret:
    """The secret a webhook delivery must be signed with. `refetchable`: it came from the
    provider's API, so a mismatch may mean it was rotated and is worth one fetch again."""

    value: str
    refetchable: bool = False


class SecretUnavailable(Exception):
    """The provider cannot give its signing secret right now (its API is down): retry later."""


class DeliveryUnverifiable(Exception):
    """No secret can verify this delivery (a local job's delivery that names no job)."""


class Provider(Protocol):
    """A provider client. Instances are cheap; create one per operation."""

    name: str
    display_name: str
    # Enabled when its configuration row is first created.
    enabled_by_default: bool
    default_hardware: str
    # Whether the provider still has a job's logs once it has ended (a local job's log file);
    # otherwise an ended job's stored copy is the record.
    logs_after_end: bool
    # Whether its jobs run elsewhere and reach this server over the network (webhooks, S3
    # uploads), so they need SIMPLETUNER_PUBLIC_URL or the provider's s3_public_url.
    remote: bool

    def hardware_defaults(self) -> dict[str, HardwareOption]:
        """The provider's price table before the operator's overrides."""

    def validate_submission(self, *, config: dict[str, Any], trusted: bool) -> None:
        """Raise rest_framework ValidationError for input this provider cannot run (`trusted`:
        the submitter may run commands as the server's user: staff who may change providers)."""

    def submit(self, *, job: Job, provider_config: ProviderConfig, phase: Phase) -> Submitted:
        """Start the job; returns its state at the provider (with its external id). The caller
        records the state (and any `phase` reported meanwhile) through job_transition."""

    def poll(self, *, job: Job, provider_config: ProviderConfig) -> RemoteState:
        """The job's current state at the provider."""

    def cancel(self, *, job: Job, provider_config: ProviderConfig) -> RemoteState | None:
        """Ask the provider to stop the job; returns its state if the answer carries one."""

    def logs(self, *, job: Job, provider_config: ProviderConfig) -> str | None:
        """The freshest logs the provider has (None: use what is stored on the job)."""

    def ended(self, *, job: Job, provider_config: ProviderConfig) -> None:
        """The job was just reported terminal (by its provider, a webhook or a poll): release
        whatever of it may still run on our side (a local process). Called after commit."""

    def signing_secret(self, *, provider_config: ProviderConfig, job_id: str, refresh: bool) -> SigningSecret:
        """The secret a webhook delivery naming `job_id` must be signed with (`refresh`: the
        cached one did not match, fetch it again). Raises SecretUnavailable when it cannot be
        had now, DeliveryUnverifiable when no secret can verify such a delivery."""

    def health(self, *, provider_config: ProviderConfig) -> Component:
        """A live check for ?include_providers=true."""
