"""Small helpers of the notification tests."""

from __future__ import annotations

import json
from typing import Any

from rest_framework.test import APIClient


def post(client: APIClient, path: str, body: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    return client.post(path, data=json.dumps(body or {}), content_type="application/json")


def webhook_channel(client: APIClient, url: str, events: list[str], name: str = "ops hook") -> dict[str, Any]:
    """Create a webhook channel through the API; returns the create answer (with the secret)."""
    response = post(
        client,
        "/api/cloud/notifications/channels",
        {"channel_type": "webhook", "name": name, "events": events, "url": url},
    )
    assert response.status_code == 201, response.json()
    return response.json()
