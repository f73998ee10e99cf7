"""Standard Webhooks signatures: published test vectors, every way a delivery can be wrong,
unsigned deliveries when allowed, and Replicate's secret (fetched, cached, rotated)."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from audit.models import AuditEntry
from providers.config import provider_config_get
from providers.credentials import local_webhook_secret
from providers.models import Job
from providers.webhooks.signing import SignatureInvalid, verify
from tests.fakes.replicate import FakeReplicate
from tests.webhooks.deliveries import prediction
from tests.webhooks.signing import signed_headers

pytestmark = pytest.mark.django_db

RUNNING = {"type": "training.status", "data": {"status": "running"}}

# The Standard Webhooks reference library's published vectors
# (standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_PAYLOAD = '{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
VECTOR_BAD_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="


def rejection_reasons() -> list[str]:
    return [e.details["reason"] for e in AuditEntry.objects.filter(event_type="webhook_rejected")]


def fresh_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


# --- Published vectors ---------------------------------------------------------------------------------


def test_the_published_signing_vector_is_reproduced() -> None:
    stamp = datetime.fromtimestamp(VECTOR_TIMESTAMP, tz=UTC)
    assert Webhook(VECTOR_SECRET).sign(VECTOR_ID, stamp, VECTOR_PAYLOAD) == VECTOR_SIGNATURE


def test_the_published_vector_verifies_within_the_tolerance_and_its_altered_signature_does_not() -> None:
    # The vector's own timestamp is years old: re-sign its id and payload at the current time.
    now = int(time.time())
    headers = signed_headers(VECTOR_SECRET, VECTOR_PAYLOAD.encode(), msg_id=VECTOR_ID, timestamp=now)
    verify(VECTOR_SECRET, VECTOR_PAYLOAD.encode(), headers)
    with pytest.raises(SignatureInvalid, match="No matching signature"):
        verify(VECTOR_SECRET, VECTOR_PAYLOAD.encode(), {**headers, "webhook-signature": VECTOR_BAD_SIGNATURE})
    # ...and at the vector's own timestamp it is refused as too old.
    old = {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TIMESTAMP), "webhook-signature": VECTOR_SIGNATURE}
    with pytest.raises(SignatureInvalid, match="too old"):
        verify(VECTOR_SECRET, VECTOR_PAYLOAD.encode(), old)


# --- Deliveries ----------------------------------------------------------------------------------------


def test_a_validly_signed_delivery_is_applied(post_webhook: Callable[..., Any], local_job: Job) -> None:
    response = post_webhook("local", {**RUNNING, "job_id": local_job.pk})
    assert response.status_code == 200
    assert response.json()["updates"]["status"] == "running"


def test_a_tampered_body_is_rejected_with_401_and_audited(
    anon: APIClient, local_job: Job, post_webhook: Callable[..., Any]
) -> None:
    body = f'{{"type": "training.status", "data": {{"status": "running"}}, "job_id": "{local_job.pk}"}}'.encode()
    headers = signed_headers(local_webhook_secret(local_job.pk), body)
    tampered = body.replace(b"running", b"failed!")
    response = anon.generic(
        "POST",
        "/api/webhooks/local",
        tampered,
        content_type="application/json",
        headers=headers,
        REMOTE_ADDR="203.0.113.9",
    )
    assert response.status_code == 401
    assert "Invalid webhook signature" in response.json()["detail"]
    local_job.refresh_from_db()
    assert local_job.status == "queued"
    entry = AuditEntry.objects.get(event_type="webhook_rejected")
    assert entry.details["reason"] == "signature" and entry.actor_ip == "203.0.113.9"


def test_a_delivery_signed_with_another_secret_is_rejected(post_webhook: Callable[..., Any], local_job: Job) -> None:
    response = post_webhook("local", {**RUNNING, "job_id": local_job.pk}, secret=fresh_secret())
    assert response.status_code == 401
    assert rejection_reasons() == ["signature"]


# Well past the 5 minutes: timestamps are whole seconds and the request takes time under load.
@pytest.mark.parametrize(("offset", "words"), [(-330, "too old"), (+330, "too new")])
def test_a_timestamp_outside_five_minutes_is_rejected(
    post_webhook: Callable[..., Any], local_job: Job, offset: int, words: str
) -> None:
    response = post_webhook("local", {**RUNNING, "job_id": local_job.pk}, timestamp=time.time() + offset)
    assert response.status_code == 401
    assert words in response.json()["detail"]


def test_a_timestamp_inside_five_minutes_is_accepted(post_webhook: Callable[..., Any], local_job: Job) -> None:
    assert post_webhook("local", {**RUNNING, "job_id": local_job.pk}, timestamp=time.time() - 270).status_code == 200
    assert post_webhook("local", {**RUNNING, "job_id": local_job.pk}, timestamp=time.time() + 270).status_code == 200


def test_one_valid_signature_among_several_is_enough(post_webhook: Callable[..., Any], local_job: Job) -> None:
    others = (
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
        "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
        "v1,%%%",
        "junk",
    )
    response = post_webhook("local", {**RUNNING, "job_id": local_job.pk}, extra_signatures=others)
    assert response.status_code == 200, response.content


def test_several_signatures_none_valid_are_rejected(
    anon: APIClient, local_job: Job, post_webhook: Callable[..., Any]
) -> None:
    body = b'{"type": "training.status"}'
    headers = signed_headers(fresh_secret(), body, extra_signatures=(VECTOR_BAD_SIGNATURE,))
    response = anon.generic("POST", "/api/webhooks/local", body, content_type="application/json", headers=headers)
    assert response.status_code == 401


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_signature_header_is_rejected(anon: APIClient, local_job: Job, missing: str) -> None:
    body = f'{{"type": "training.status", "data": {{"status": "running"}}, "job_id": "{local_job.pk}"}}'.encode()
    headers = signed_headers(local_webhook_secret(local_job.pk), body)
    del headers[missing]
    response = anon.generic("POST", "/api/webhooks/local", body, content_type="application/json", headers=headers)
    assert response.status_code == 401
    assert "Missing required headers" in response.json()["detail"]
    assert rejection_reasons() == ["signature"]


def test_an_unsigned_delivery_is_rejected_by_default(post_webhook: Callable[..., Any], local_job: Job) -> None:
    response = post_webhook("local", {**RUNNING, "job_id": local_job.pk}, sign=False)
    assert response.status_code == 401
    local_job.refresh_from_db()
    assert local_job.status == "queued"


def test_unsigned_deliveries_are_accepted_when_not_required_and_health_says_so(
    post_webhook: Callable[..., Any], local_job: Job, anon: APIClient
) -> None:
    config = provider_config_get("local")
    config.webhook_require_signature = False
    config.save()
    response = post_webhook("local", {**RUNNING, "job_id": local_job.pk}, sign=False)
    assert response.status_code == 200, response.content
    assert response.json()["updates"]["status"] == "running"
    # A delivery that does carry a signature must still carry a valid one.
    bad = post_webhook("local", {**RUNNING, "job_id": local_job.pk}, secret=fresh_secret())
    assert bad.status_code == 401
    webhooks = next(c for c in anon.get("/api/cloud/health").json()["components"] if c["name"] == "webhooks")
    assert webhooks["status"] == "degraded"
    assert webhooks["details"] == {"unsigned_accepted": ["local"]}
    assert "webhook_require_signature=false" in webhooks["message"]


def test_health_reports_signatures_required_by_default(anon: APIClient) -> None:
    webhooks = next(c for c in anon.get("/api/cloud/health").json()["components"] if c["name"] == "webhooks")
    assert webhooks["status"] == "healthy"
    assert webhooks["details"] == {"unsigned_accepted": []}


# --- Replicate's secret ----------------------------------------------------------------------------------


def test_replicates_secret_is_fetched_once_and_cached(
    post_webhook: Callable[..., Any], replicate: FakeReplicate, replicate_job: Job
) -> None:
    for status in ("starting", "processing"):
        response = post_webhook("replicate", prediction(status), secret=replicate.webhook_secret)
        assert response.status_code == 200, response.content
    assert len(replicate.requests_to("GET", "/webhooks/default/secret")) == 1
    replicate_job.refresh_from_db()
    assert replicate_job.status == "running"


def test_a_rotated_replicate_secret_is_refetched_once_and_forgeries_do_not_refetch(
    post_webhook: Callable[..., Any], replicate: FakeReplicate, replicate_job: Job
) -> None:
    assert post_webhook("replicate", prediction("starting"), secret=replicate.webhook_secret).status_code == 200
    replicate.webhook_secret = fresh_secret()  # rotated at Replicate
    response = post_webhook("replicate", prediction("processing"), secret=replicate.webhook_secret)
    assert response.status_code == 200, response.content
    assert len(replicate.requests_to("GET", "/webhooks/default/secret")) == 2
    # Later deliveries use the new cached secret; forged ones are refused without asking again.
    assert post_webhook("replicate", prediction("processing"), secret=replicate.webhook_secret).status_code == 200
    for _ in range(3):
        assert post_webhook("replicate", prediction("failed"), secret=fresh_secret()).status_code == 401
    assert len(replicate.requests_to("GET", "/webhooks/default/secret")) == 2
    replicate_job.refresh_from_db()
    assert replicate_job.status == "running"


def test_replicate_webhook_secret_from_the_secrets_chain_wins(
    post_webhook: Callable[..., Any], replicate: FakeReplicate, replicate_job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = fresh_secret()
    monkeypatch.setenv("REPLICATE_WEBHOOK_SECRET", configured)
    assert post_webhook("replicate", prediction("starting"), secret=configured).status_code == 200
    assert post_webhook("replicate", prediction("processing"), secret=replicate.webhook_secret).status_code == 401
    assert replicate.requests_to("GET", "/webhooks/default/secret") == []


def test_an_unreachable_secret_is_503_so_the_sender_retries(
    post_webhook: Callable[..., Any], replicate: FakeReplicate, replicate_job: Job, settings: Any
) -> None:
    settings.SIMPLETUNER_HTTP_RETRIES = 0
    replicate.script(500, path="/webhooks", times=5)
    response = post_webhook("replicate", prediction("starting"), secret=replicate.webhook_secret)
    assert response.status_code == 503
    assert "secret" in response.json()["detail"]
    assert replicate.webhook_secret not in response.content.decode()
    assert rejection_reasons() == ["secret_unavailable"]
