"""Webhook payloads in our vocabulary: which job they are about, and what they say.

Two shapes arrive at POST /api/webhooks/{provider}:

- Replicate's prediction object (`id`, `status`, `output`, `error`, `logs`, `metrics`), whose
  `id` is the job's external id (providers.replicate.prediction_state reads it);
- SimpleTuner trainer events (`type` plus fields), carrying our `job_id`:
  `training.status` (`data.status`, optional `progress`), `lifecycle.stage`
  (`stage.status`, `stage.progress`), `training.progress` (step / total / eta) and
  `training.checkpoint` (`checkpoint.path`). Unknown event types are accepted and change nothing.

Every field is read defensively: a value of the wrong type is ignored, never an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from providers.base import RemoteState
from providers.models import JobStatus
from providers.replicate import prediction_state

TRAINER_STATUS = {
    "pending": JobStatus.QUEUED,
    "queued": JobStatus.QUEUED,
    "starting": JobStatus.QUEUED,
    "initializing": JobStatus.QUEUED,
    "running": JobStatus.RUNNING,
    "training": JobStatus.RUNNING,
    "in_progress": JobStatus.RUNNING,
    "completed": JobStatus.COMPLETED,
    "complete": JobStatus.COMPLETED,
    "succeeded": JobStatus.COMPLETED,
    "success": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "error": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
    "canceled": JobStatus.CANCELLED,
}
# Progress keys we keep, with the spellings trainers use for them.
_PROGRESS_KEYS = {
    "current": ("current", "step", "global_step"),
    "total": ("total", "total_steps", "max_steps"),
    "percent": ("percent", "percentage"),
    "eta_seconds": ("eta_seconds", "eta"),
    "loss": ("loss",),
    "epoch": ("epoch",),
    "label": ("label",),
}
MAX_TEXT = 500
MAX_NUMBER = 2**53  # beyond it, a progress figure is noise (and loses precision in JSON clients)


@dataclass
class WebhookPayload:
    """What one delivery says: the job it names (our id or the provider's) and its state."""

    kind: str
    job_id: str
    external_id: str
    remote: RemoteState


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def _number(value: Any) -> float | int | None:
    """A finite number that any database stores (JSON columns refuse NaN and infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if -MAX_NUMBER <= value <= MAX_NUMBER else None


def progress_of(raw: Any) -> dict[str, Any]:
    """A trainer's progress object, normalised to current/total/percent/eta_seconds/loss/..."""
    source = _dict(raw)
    progress: dict[str, Any] = {}
    for key, spellings in _PROGRESS_KEYS.items():
        for spelling in spellings:
            value = source.get(spelling)
            value = _text(value) if key == "label" else _number(value)
            if value not in (None, ""):
                progress[key] = value
                break
    total, current = progress.get("total"), progress.get("current")
    if "percent" not in progress and current is not None and total:
        progress["percent"] = round(current * 100 / total, 1)
    return progress


def _trainer_state(event: dict[str, Any]) -> RemoteState:
    kind = event.get("type")
    data = _dict(event.get("data"))
    if kind == "training.status":
        status = TRAINER_STATUS.get(_text(data.get("status") or event.get("status")).lower())
        progress = progress_of(event.get("progress") or data.get("progress"))
        error = _text(data.get("error") or event.get("message")) if status == JobStatus.FAILED else ""
        return RemoteState(status=status, progress=progress, error=error)
    if kind == "lifecycle.stage":
        stage = _dict(event.get("stage"))
        running = _text(stage.get("status")).lower() in ("running", "in_progress")
        progress = progress_of(stage.get("progress"))
        if progress and stage.get("key"):
            progress["stage"] = _text(stage.get("key"))
        return RemoteState(status=JobStatus.RUNNING if running else None, progress=progress)
    if kind == "training.progress":
        progress = progress_of(data or event)
        # Progress means the job runs; an event without usable progress says nothing.
        return RemoteState(status=JobStatus.RUNNING if progress else None, progress=progress)
    if kind == "training.checkpoint":
        checkpoint = _dict(event.get("checkpoint") or data.get("checkpoint"))
        path = _text(checkpoint.get("path"))
        if not path:
            return RemoteState(status=None)
        final = checkpoint.get("is_final") is True
        return RemoteState(status=None, progress={"checkpoint": path, "checkpoint_final": final})
    return RemoteState(status=None)


def parse_payload(payload: dict[str, Any]) -> WebhookPayload:
    """Read one delivery. Trainer events have a `type`; everything else is a prediction."""
    if isinstance(payload.get("type"), str):
        data = _dict(payload.get("data"))
        job_id = _text(payload.get("job_id") or data.get("job_id"))
        return WebhookPayload(payload["type"][:64], job_id, "", _trainer_state(payload))
    remote = prediction_state(payload)
    return WebhookPayload("prediction", "", remote.external_id, remote)
