"""The `channel_layer` health component: a real round trip through the configured layer."""

from __future__ import annotations

from typing import Any

import pytest

from providers.health import check_channel_layer
from tests.server.live import free_port
from tests.services import require_service


def test_the_in_memory_layer_round_trips() -> None:
    component = check_channel_layer()
    assert component.status == "healthy"
    assert component.message == "InMemoryChannelLayer channel layer round trip OK"


@pytest.mark.services
def test_a_reachable_redis_layer_round_trips(settings: Any) -> None:
    url = require_service("redis")
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [url]}}
    }
    component = check_channel_layer()
    assert component.status == "healthy", component.error
    assert "RedisChannelLayer" in component.message


def test_an_unreachable_redis_is_degraded_with_the_reason_for_staff_only(settings: Any) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [dead]}}
    }
    component = check_channel_layer()
    assert component.status == "degraded"
    assert "other processes" in component.message
    assert component.error and "Connection" in component.error
    assert "error" not in component.as_dict(internal=False)
