"""How the admin shows a job's values (status colours, progress, run time, outputs) and a
provider's state as the API reports it (effective values, cost-limit spend, circuit, prices).

Pure formatting (HTML-escaped by format_html), shared by the job list and the job page; the
provider functions take the parts of GET /api/cloud/providers/{name}/config's body.
"""

from __future__ import annotations

from typing import Any

from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from cloudops.admin_lists import timestamp_text
from providers.models import JobStatus

# Background and text colours with enough contrast in the light and the dark admin theme.
STATUS_COLOURS = {
    JobStatus.PENDING_APPROVAL: ("#7c3aed", "#fff"),
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


# --- Providers ------------------------------------------------------------------------------

# The API's `effective` keys, in our words, in the order the page lists them.
EFFECTIVE_LABELS = {
    "ssl_verify": "SSL verification",
    "ssl_ca_bundle": "SSL CA bundle",
    "proxy_url": "Proxy URL",
    "no_proxy": "NO_PROXY",
    "http_timeout": "HTTP timeout (seconds)",
    "public_url": "Public URL",
    "webhook_url": "Webhook URL",
    "s3_output_path": "S3 output path",
    "s3_endpoint_url": "S3 endpoint URL",
}


def effective_table(effective: dict[str, Any]) -> SafeString:
    """The values calls and jobs really use, after the environment fills what the page leaves empty."""
    rows = ((label, _effective_value(effective.get(key))) for key, label in EFFECTIVE_LABELS.items())
    return format_html(
        '<table class="provider-effective"><tbody>{}</tbody></table>',
        format_html_join("", '<tr><th scope="row">{}</th><td>{}</td></tr>', rows),
    )


def _effective_value(value: Any) -> str:
    if isinstance(value, bool):
        return "verify certificates" if value else "do not verify (insecure)"
    return "(none)" if value in (None, "") else str(value)


def cost_limit_text(cost_limit: dict[str, Any]) -> str:
    """`$12.30 of $100.00 spent this monthly period (12.3%), since 2026-12-01 00:00:00 UTC; over it: block`."""
    since = parse_datetime(cost_limit["period_start"])
    spent = f"${cost_limit['spent_usd']}"
    period = f"this {cost_limit['period']} period"
    if not cost_limit["enabled"]:
        return f"No limit is enforced. {spent} spent {period}, since {timestamp_text(since)}."
    amount = f"${float(cost_limit['amount_usd']):.2f}"
    return (
        f"{spent} of {amount} spent {period} ({cost_limit['percent_used']}%), since {timestamp_text(since)}; "
        f"when reached: {cost_limit['action']}."
    )


def circuit_text(circuit: dict[str, Any]) -> str:
    """`closed`, or `open: calls are refused; tried again in 42 s` with the failure count."""
    failures = f"{circuit['failures_total']} failure(s) in total"
    if circuit["state"] == "open":
        retry = circuit["retry_in_seconds"]
        when = f"tried again in {duration_text(retry)}" if retry else "tried again on the next call"
        return f"open: calls to the provider are refused; {when} ({failures})"
    if circuit["state"] == "half_open":
        return f"half open: one trial call decides ({failures})"
    return f"closed: calls go through ({failures})"


def price_table(prices: dict[str, Any], defaults: dict[str, float], overrides: dict[str, Any]) -> SafeString:
    """The prices jobs are charged (the API's `hardware_prices`): the provider's defaults with
    the overrides above on top, each row saying where its price comes from."""
    rows = (
        (
            hw_id,
            entry["label"],
            _price(entry["price_per_second"]),
            _number_text(entry["price_per_hour"]),
            _source(hw_id, defaults, overrides),
        )
        for hw_id, entry in prices.items()
    )
    return format_html(
        '<table class="provider-prices"><thead><tr><th>Hardware ID</th><th>Label</th><th>USD per second</th>'
        "<th>USD per hour</th><th>Price from</th></tr></thead><tbody>{}</tbody></table>",
        format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
    )


def _number_text(value: float) -> str:
    """`3.51`, `0.0004`, `1080`: the API's rounded figure without trailing zeros."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _price(value: float) -> str:
    return repr(float(value))


def _source(hw_id: str, defaults: dict[str, float], overrides: dict[str, Any]) -> str:
    if hw_id not in overrides:
        return "the provider's default"
    if hw_id in defaults:
        return f"the override above (default {_price(defaults[hw_id])})"
    return "the override above (not a default)"
