"""Start-up checks of the rate-limit configuration (`manage.py check`, and every server start)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register


@register()
def check_state_backend(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    if settings.STATE_BACKEND == "memory" and not settings.DEBUG:
        messages.append(
            Warning(
                "STATE_BACKEND=memory keeps rate-limit state in each process: every server process "
                "admits the full limit, and restarts forget it.",
                hint="Use STATE_BACKEND=database (the default) or redis outside tests.",
                id="ratelimit.W001",
            )
        )
    return messages
