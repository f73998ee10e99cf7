"""How the admin shows a job's values: status colours, progress, run time, outputs.

Pure formatting (HTML-escaped by format_html), shared by the job list and the job page.
"""

from __future__ import annotations

from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString

from providers.models import JobStatus

# Background and text colours with enough contrast in the light and the dark admin theme.
STATUS_COLOURS = {
    JobStatus.PENDING: ("#6b7280", "#fff"),
    JobStatus.UPLOADING: ("#b45309", "#fff"),
    JobStatus.QUEUED: ("#b45309", "#fff"),
    JobStatus.RUNNING: ("#1d4ed8", "#fff"),
    JobStatus.COMPLETED: ("#15803d", "#fff"),
    JobStatus.FAILED: ("#b91c1c", "#fff"),
    JobStatus.CANCELLED: ("#4b5563", "#fff"),
}


def status_badge(status: str) -> SafeString:
    background, colour = STATUS_COLOURS.get(status, ("#6b7280", "#fff"))  # type: ignore[call-overload]
    return format_html(
        '<span class="job-status job-status-{}" style="background:{};color:{};padding:1px 6px;'
        'border-radius:3px;white-space:nowrap">{}</span>',
        status,
        background,
        colour,
        status,
    )


def progress_text(progress: dict[str, Any]) -> str:
    """`step 2 / 10 (20.0%), loss 0.12, about 5 min left` from a normalised progress object
    (providers.webhooks.payloads.progress_of); "" when there is none."""
    parts = []
    current, total, percent = progress.get("current"), progress.get("total"), progress.get("percent")
    if current is not None:
        step = f"step {_number(current)}" + (f" / {_number(total)}" if total else "")
        parts.append(step + (f" ({percent}%)" if percent is not None else ""))
    elif percent is not None:
        parts.append(f"{percent}%")
    if progress.get("loss") is not None:
        parts.append(f"loss {progress['loss']}")
    if progress.get("eta_seconds") is not None:
        parts.append(f"about {duration_text(progress['eta_seconds'])} left")
    if progress.get("label"):
        parts.append(str(progress["label"]))
    return ", ".join(parts)


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def duration_text(seconds: float | None) -> str:
    """`1 h 02 min 03 s`, `4 min 05 s`, `12.5 s`; "" for None."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.3g} s" if seconds < 10 else f"{round(seconds)} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    return f"{minutes} min {secs:02d} s"


def size_text(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # unreachable: the loop returns at GiB
