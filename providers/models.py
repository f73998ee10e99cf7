"""Provider configuration, jobs, circuit-breaker state and the background-sync lease."""

from __future__ import annotations

import secrets
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

_BASE32_LOWER = "abcdefghijklmnopqrstuvwxyz234567"
_BASE32_UPPER = _BASE32_LOWER.upper()


def new_job_id() -> str:
    """`job-` and 20 random base32 characters (100 bits).

    Always a valid S3 bucket name (lowercase letters, digits and one hyphen; 24 characters;
    starts and ends alphanumeric; never IP-like), because the id is the job's output bucket.
    """
    return "job-" + "".join(secrets.choice(_BASE32_LOWER) for _ in range(20))


def new_upload_token() -> str:
    """An AWS-style access key id (20 characters, `STU` prefix) for the job's S3 uploads."""
    return "STU" + "".join(secrets.choice(_BASE32_UPPER) for _ in range(17))


class CostLimitPeriod(models.TextChoices):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class CostLimitAction(models.TextChoices):
    WARN = "warn"
    BLOCK = "block"


class ProviderConfig(models.Model):
    """Runtime configuration of one provider, edited in the admin or through the API.

    Network fields left empty (None / "") inherit the environment: SIMPLETUNER_SSL_VERIFY,
    SIMPLETUNER_CA_BUNDLE, HTTPS_PROXY / HTTP_PROXY and SIMPLETUNER_HTTP_TIMEOUT. A value set
    here wins over the environment for this provider's calls.
    """

    name = models.CharField(max_length=32, unique=True)
    display_name = models.CharField(max_length=100, blank=True)
    enabled = models.BooleanField(default=True)
    # Webhook security: read by the inbound webhook endpoint.
    webhook_allowed_ips = models.JSONField("webhook allowed IPs", default=list, blank=True)
    webhook_require_signature = models.BooleanField(default=True)
    # Outbound HTTP.
    ssl_verify = models.BooleanField("SSL verification", null=True, blank=True)
    ssl_ca_bundle = models.CharField("SSL CA bundle", max_length=1024, blank=True, default="")
    proxy_url = models.CharField("proxy URL", max_length=2048, blank=True, default="")
    http_timeout = models.FloatField("HTTP timeout (seconds)", null=True, blank=True)
    # The S3-compatible upload endpoint given to this provider's jobs.
    s3_endpoint_enabled = models.BooleanField("S3 endpoint enabled", default=True)
    s3_public_url = models.CharField("S3 public URL", max_length=2048, blank=True, default="")
    s3_output_path = models.CharField("S3 output path", max_length=1024, blank=True, default="")
    # The endpoint URL jobs are given (AWS_ENDPOINT_URL_S3); empty: s3_public_url + /api/cloud/storage.
    # The root of a SIMPLETUNER_S3_HOSTS host (https://s3.example.com) suits clients such as s3cmd.
    s3_endpoint_url = models.CharField("S3 endpoint URL", max_length=2048, blank=True, default="")
    # Spending limit over a calendar period (UTC).
    cost_limit_enabled = models.BooleanField(default=False)
    cost_limit_amount = models.DecimalField("cost limit (USD)", max_digits=12, decimal_places=2, default=Decimal("0"))
    cost_limit_period = models.CharField(max_length=8, choices=CostLimitPeriod.choices, default=CostLimitPeriod.MONTHLY)
    cost_limit_action = models.CharField(max_length=8, choices=CostLimitAction.choices, default=CostLimitAction.WARN)
    # Prepaid credit (providers.credit): the amount an admin bought, set with the time it was set
    # (providers.config.provider_config_update stamps it when the amount changes); the balance
    # is that amount minus the cost of the jobs completed since. Null: no balance is tracked.
    credit_balance_usd = models.DecimalField(
        "credit balance (USD)",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Prepaid credit as of now; jobs completed from now on are subtracted. Empty: not tracked.",
    )
    credit_balance_set_at = models.DateTimeField("credit balance set at", null=True, blank=True, editable=False)
    credit_low_usd = models.DecimalField(
        "credit low mark (USD)",
        max_digits=12,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="At or below this balance the provider's health is degraded and submissions carry a warning.",
    )
    # Price overrides merged over the provider's default table: {id: {"price_per_second", "label"}}.
    hardware = models.JSONField(default=dict, blank=True)
    default_hardware = models.CharField(max_length=64, blank=True, default="")
    # Which trainer the provider runs (Replicate: "owner/name" and an optional version id).
    model = models.CharField(max_length=200, blank=True, default="")
    version_override = models.CharField(max_length=128, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["name"]
        verbose_name = "provider"

    def __str__(self) -> str:
        return self.display_name or self.name

    @property
    def output_root(self) -> Path:
        """The directory holding this provider's jobs' outputs, one bucket per job
        ({output_root}/{job id}/{key}): `s3_output_path` with `~` expanded, else OUTPUTS_DIR.

        The one statement of the rule: the API, the S3 endpoint and its sweeps read it through
        providers.selectors (job_output_root, output_roots). A provider without a row has the
        defaults, so an unsaved `ProviderConfig()` names the default root.
        """
        return Path(self.s3_output_path).expanduser() if self.s3_output_path else settings.OUTPUTS_DIR


class JobStatus(models.TextChoices):
    # Held by an approval rule (governance): recorded, never sent to the provider and without
    # upload credentials until approved (then `pending`), or cancelled when rejected or expired.
    PENDING_APPROVAL = "pending_approval"
    PENDING = "pending"
    UPLOADING = "uploading"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_STATUSES = frozenset(set(JobStatus) - TERMINAL_STATUSES)
# Statuses only move to a higher rank; terminal statuses share the top rank, so they are final.
STATUS_RANK: dict[str, int] = {
    JobStatus.PENDING_APPROVAL: 0,
    JobStatus.PENDING: 1,
    JobStatus.UPLOADING: 2,
    JobStatus.QUEUED: 3,
    JobStatus.RUNNING: 4,
    JobStatus.COMPLETED: 5,
    JobStatus.FAILED: 5,
    JobStatus.CANCELLED: 5,
}


class Job(models.Model):
    """One training job.

    The id is the job's S3 output bucket. `upload_token` is the access key id of the job's
    upload credentials (kept out of API responses, though every URL the job presigns shows it,
    so it never authenticates alone); the secret and the legacy `X-Upload-Token` value are
    derived from it with the server key (providers.credentials) and never stored. Status changes go through
    providers.jobs.job_transition only.
    """

    id = models.CharField(primary_key=True, max_length=63, default=new_job_id, editable=False)
    name = models.CharField(max_length=200, blank=True, default="")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs")
    provider = models.CharField(max_length=32)
    external_id = models.CharField("external ID", max_length=128, blank=True, default="", db_index=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    hardware = models.CharField(max_length=64, blank=True, default="")
    config = models.JSONField(default=dict, blank=True)
    dataloader_config = models.JSONField(default=list, blank=True)
    dataset = models.CharField(max_length=1024, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Last time the provider told us anything (webhook or poll); the sync polls stale jobs.
    last_synced_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    run_seconds = models.FloatField("run time (seconds)", null=True, blank=True)
    cost_usd = models.DecimalField("cost (USD)", max_digits=14, decimal_places=6, default=Decimal("0"))
    error = models.TextField(blank=True, default="")
    logs = models.TextField(blank=True, default="")
    progress = models.JSONField(default=dict, blank=True)
    output_url = models.CharField("output URL", max_length=2048, blank=True, default="")
    # The local runner's process (pid, start time, host), to check it across restarts.
    runner = models.JSONField(default=dict, blank=True)
    upload_token = models.CharField(max_length=32, unique=True, default=new_upload_token, editable=False)
    upload_objects = models.IntegerField(default=0)
    upload_bytes = models.BigIntegerField(default=0)
    last_upload_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    # When a process took on starting the job at the provider (providers/submit.py).
    start_claimed_at = models.DateTimeField(null=True, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # NULL keys never collide (on every backend), so only keyed submissions are unique.
            models.UniqueConstraint(fields=["owner", "idempotency_key"], name="job_owner_idempotency_key"),
        ]
        indexes = [
            # The job list's order (newest first) under each of its filters, ending in the
            # whole ordering so a page, a cursor and a capped count are index range scans
            # (providers.paging). created_at and id never change: status updates are the
            # only writes these cost.
            models.Index(fields=["created_at", "id"], name="job_created_keyset"),
            models.Index(fields=["owner", "created_at", "id"], name="job_owner_keyset"),
            models.Index(fields=["status", "created_at", "id"], name="job_status_keyset"),
            models.Index(fields=["provider", "created_at", "id"], name="job_provider_keyset"),
            models.Index(fields=["status", "last_synced_at"], name="job_status_synced"),
            # Covering indexes for the metrics: per-status counts and sums, and a provider's
            # spend in the current cost-limit period, without reading the table.
            models.Index(fields=["status", "cost_usd", "run_seconds"], name="job_status_costs"),
            models.Index(fields=["provider", "completed_at", "cost_usd"], name="job_provider_spend"),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class CircuitState(models.TextChoices):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


# The value exported as simpletuner_circuit_breaker_state (same encoding as SimpleTuner's).
CIRCUIT_STATE_VALUE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


class CircuitBreaker(models.Model):
    """The breaker of one provider, shared by every server process (providers.circuit)."""

    provider = models.CharField(max_length=32, unique=True)
    state = models.CharField(max_length=10, choices=CircuitState.choices, default=CircuitState.CLOSED)
    consecutive_failures = models.IntegerField(default=0)
    failures_total = models.BigIntegerField(default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    probe_started_at = models.DateTimeField(null=True, blank=True)
    probes_in_flight = models.IntegerField(default=0)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["provider"]

    def __str__(self) -> str:
        return f"{self.provider}: {self.state}"


class Lease(models.Model):
    """A named, expiring lock held by one process (e.g. the background sync)."""

    name = models.CharField(primary_key=True, max_length=64)
    holder = models.CharField(max_length=128)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder}"


class WebhookDelivery(models.Model):
    """A webhook-id already applied, so a replay or a retried duplicate is not applied twice.

    The row is inserted in the same transaction as the job update it records, under a unique
    key: of two identical deliveries racing in different processes, exactly one commits and
    the other fails on the key (and answers "duplicate"). Rows expire after the signature's
    timestamp tolerance plus a margin (a replay older than that fails the timestamp check
    anyway): a delivery takes an expired record of its id over, and the sync pass prunes the
    rest, so the table stays small.
    """

    provider = models.CharField(max_length=32)
    webhook_id = models.CharField(max_length=255)
    job_id = models.CharField(max_length=63, blank=True, default="")
    received_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "webhook_id"], name="webhook_delivery_once")]

    def __str__(self) -> str:
        return f"{self.provider}:{self.webhook_id}"


class LiveEvent(models.Model):
    """A recent event of the live stream (GET /api/events/stream), kept so any process can
    replay what a reconnecting client missed (Last-Event-ID). The id is the SSE event id.
    Only the last SIMPLETUNER_EVENTS_BUFFER events are kept."""

    kind = models.CharField(max_length=32)
    job_id = models.CharField(max_length=63, blank=True, default="")
    owner_id = models.BigIntegerField(null=True, blank=True)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    # The channel layer refused its live message (Redis down or hung): a stream resuming from
    # a later id still gets it (providers.stream), since it cannot have had it live.
    unsent = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.job_id}"
