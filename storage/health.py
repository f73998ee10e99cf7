"""Health component `output_storage`: free disk space where uploads land."""

from __future__ import annotations

import shutil

from django.conf import settings

from cloudops.health import Component, guarded


@guarded("output_storage")
def check_output_storage() -> Component:
    root = settings.OUTPUTS_DIR
    try:
        root.mkdir(parents=True, exist_ok=True)
        usage = shutil.disk_usage(root)
    except OSError as exc:
        return Component(
            "output_storage", "unhealthy", "Output storage unavailable", error=f"{type(exc).__name__}: {exc}"
        )
    minimum = settings.SIMPLETUNER_S3_MIN_FREE_BYTES
    details = {"free_bytes": usage.free, "total_bytes": usage.total, "min_free_bytes": minimum}
    gib = usage.free / 1024**3
    if usage.free < minimum:
        return Component("output_storage", "unhealthy", f"{gib:.1f} GiB free: uploads are refused", details=details)
    if usage.free < 2 * minimum:
        return Component("output_storage", "degraded", f"{gib:.1f} GiB free: close to the minimum", details=details)
    return Component("output_storage", "healthy", f"{gib:.1f} GiB free", details=details)
