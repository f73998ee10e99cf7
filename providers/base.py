"""The contract every provider client implements (local subprocesses, Replicate, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from cloudops.health import Component
    from providers.models import Job, ProviderConfig


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


class Provider(Protocol):
    """A provider client. Instances are cheap; create one per operation."""

    name: str
    display_name: str
    # Enabled when its configuration row is first created.
    enabled_by_default: bool
    default_hardware: str

    def hardware_defaults(self) -> dict[str, HardwareOption]:
        """The provider's price table before the operator's overrides."""

    def validate_submission(self, *, config: dict[str, Any], user_is_staff: bool) -> None:
        """Raise rest_framework ValidationError for input this provider cannot run."""

    def submit(self, *, job: Job, provider_config: ProviderConfig) -> tuple[RemoteState, list[str]]:
        """Start the job; returns its state at the provider (with its external id) and
        warnings for the caller. The caller records the state through job_transition."""

    def poll(self, *, job: Job, provider_config: ProviderConfig) -> RemoteState:
        """The job's current state at the provider."""

    def cancel(self, *, job: Job, provider_config: ProviderConfig) -> RemoteState | None:
        """Ask the provider to stop the job; returns its state if the answer carries one."""

    def logs(self, *, job: Job, provider_config: ProviderConfig) -> str | None:
        """The freshest logs the provider has (None: use what is stored on the job)."""

    def health(self, *, provider_config: ProviderConfig) -> Component:
        """A live check for ?include_providers=true."""
