"""What a webhook delivery is answered: a status code and a JSON body."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class WebhookOutcome:
    status_code: int
    body: dict[str, Any] = field(default_factory=dict)
