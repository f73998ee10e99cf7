"""Signed webhook deliveries and the jobs they are for: the fixtures (registered for every
test directory by tests/conftest.py) and a Replicate prediction as its webhooks carry it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from rest_framework.test import APIClient

from providers.models import Job, JobStatus
from tests.webhooks.signing import local_secret_for, signed_headers

# An address outside every trusted proxy and documentation-only (RFC 5737).
OUTSIDER = "203.0.113.9"


@pytest.fixture
def post_webhook(anon: APIClient) -> Callable[..., Any]:
    """POST a delivery: `payload` (dict or raw bytes), signed with `secret` unless unsigned."""

    def post(
        provider: str,
        payload: Any,
        *,
        secret: str | None = None,
        sign: bool = True,
        ip: str = OUTSIDER,
        headers: dict[str, str] | None = None,
        **signing: Any,
    ) -> Any:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        signed = signed_headers(secret or local_secret_for(body), body, **signing) if sign else {}
        return anon.generic(
            "POST",
            f"/api/webhooks/{provider}",
            body,
            content_type="application/json",
            headers={**signed, **(headers or {})},
            REMOTE_ADDR=ip,
        )

    return post


@pytest.fixture
def local_job(alice: AbstractUser) -> Job:
    return Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED, hardware="local")


@pytest.fixture
def replicate_job(alice: AbstractUser) -> Job:
    return Job.objects.create(
        owner=alice, provider="replicate", external_id="p8rdm4lz2hrga0cmk1rt6zvq5w", hardware="gpu-l40s"
    )


def prediction(status: str, **fields: Any) -> dict[str, Any]:
    """A Replicate prediction object as its webhooks carry it."""
    return {
        "id": "p8rdm4lz2hrga0cmk1rt6zvq5w",
        "model": "simpletuner/advanced-trainer",
        "status": status,
        "logs": fields.pop("logs", ""),
        "output": fields.pop("output", None),
        "error": fields.pop("error", None),
        "metrics": fields.pop("metrics", {}),
        "created_at": "2026-11-28T10:00:00.000000Z",
        "started_at": fields.pop("started_at", None),
        "completed_at": fields.pop("completed_at", None),
        **fields,
    }
