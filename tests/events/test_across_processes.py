"""Two server processes sharing the database and Redis: events, replay protection and the
Replicate secret cache work across them; health reports the channel layer."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from django.contrib.auth.models import AbstractUser

from cloudops.ratelimit.backends.redis import SLOTS
from providers.credentials import local_webhook_secret
from providers.models import Job, JobStatus
from tests.conftest import client_for
from tests.events.conftest import assert_no_unhandled_errors, deliver, server_env
from tests.events.sse import open_stream
from tests.fakes.replicate import FakeReplicate
from tests.server.live import free_port, running
from tests.server.raw_http import chunked, exchange
from tests.services import require_service
from tests.webhooks.deliveries import prediction
from tests.webhooks.signing import signed_headers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.services]


@pytest.fixture(scope="module")
def fake_replicate() -> Iterator[FakeReplicate]:
    fake = FakeReplicate().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def servers(
    django_db_setup: None, jobs_dir: Path, tmp_path_factory: pytest.TempPathFactory, fake_replicate: FakeReplicate
) -> Iterator[tuple[str, str]]:
    redis_url = require_service("redis")
    client = redis.Redis.from_url(redis_url)
    stale = client.keys("*cloudops:webhook-secret*")
    if stale:
        client.delete(*stale)  # a previous run's cached secret (another fake's)
    logs = tmp_path_factory.mktemp("servers")
    extra = {
        "REDIS_URL": redis_url,
        "REPLICATE_API_BASE_URL": fake_replicate.base_url,
        "REPLICATE_API_TOKEN": fake_replicate.token,
        "SIMPLETUNER_EVENTS_MAX_PER_USER": "3",
    }
    port_a, port_b = free_port(), free_port()
    env_a = server_env(jobs_dir, PORT=str(port_a), **extra)
    env_b = server_env(jobs_dir, PORT=str(port_b), **extra)
    env_a.pop("REPLICATE_WEBHOOK_SECRET", None)
    env_b.pop("REPLICATE_WEBHOOK_SECRET", None)
    serve = [sys.executable, "manage.py", "serve", "--port"]
    with (
        running([*serve, str(port_a)], env_a, port_a, logs / "a.log") as a,
        running([*serve, str(port_b)], env_b, port_b, logs / "b.log") as b,
    ):
        yield a, b
    assert_no_unhandled_errors(logs / "a.log")
    assert_no_unhandled_errors(logs / "b.log")


def test_a_webhook_delivered_to_one_process_appears_on_a_stream_opened_on_the_other(
    servers: tuple[str, str], alice: AbstractUser, olivia: AbstractUser
) -> None:
    a, b = servers
    job = Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED)
    alice_key = client_for(alice).raw_key  # type: ignore[attr-defined]
    staff_key = client_for(olivia).raw_key  # type: ignore[attr-defined]
    with open_stream(b, api_key=alice_key) as on_b, open_stream(a, api_key=staff_key) as staff_on_a:
        response = deliver(a, "local", {"type": "training.status", "data": {"status": "running"}, "job_id": job.pk})
        assert response.status_code == 200 and response.json()["status"] == "received"
        event = on_b.until(lambda m: m.event == "job.status")
        staff_event = staff_on_a.until(lambda m: m.event == "job.status")
    assert event.json["job_id"] == job.pk and event.json["status"] == "running"
    assert staff_event.id == event.id  # one event, one id, whichever process serves the stream


def test_identical_deliveries_to_two_processes_at_once_are_applied_once(
    servers: tuple[str, str], alice: AbstractUser
) -> None:
    job = Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED)
    body = json.dumps({"type": "training.status", "data": {"status": "running"}, "job_id": job.pk}).encode()
    headers = {"Content-Type": "application/json", **signed_headers(local_webhook_secret(job.pk), body)}
    with ThreadPoolExecutor(4) as pool:
        futures = [
            pool.submit(httpx.post, f"{base}/api/webhooks/local", content=body, headers=headers, timeout=30)
            for base in (*servers, *servers)
        ]
        answers = sorted(f.result().json()["status"] for f in futures)
    assert answers == ["duplicate", "duplicate", "duplicate", "received"]


def test_replicates_secret_is_fetched_once_for_all_processes(
    servers: tuple[str, str], alice: AbstractUser, fake_replicate: FakeReplicate
) -> None:
    Job.objects.create(owner=alice, provider="replicate", external_id="p8rdm4lz2hrga0cmk1rt6zvq5w", hardware="gpu-l40s")
    before = len(fake_replicate.requests_to("GET", "/webhooks/default/secret"))
    for base, status in zip(servers, ("starting", "processing"), strict=True):
        body = json.dumps(prediction(status)).encode()
        signed = fake_replicate.sign(body, msg_id=f"msg_{status}", timestamp=int(time.time()))
        response = httpx.post(f"{base}/api/webhooks/replicate", content=body, headers=signed, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "received"
    assert len(fake_replicate.requests_to("GET", "/webhooks/default/secret")) - before == 1


def test_health_reports_the_channel_layer_when_redis_is_configured(servers: tuple[str, str]) -> None:
    components = httpx.get(servers[0] + "/api/cloud/health", timeout=10).json()["components"]
    layer = next(c for c in components if c["name"] == "channel_layer")
    assert layer["status"] == "healthy"
    assert "RedisChannelLayer" in layer["message"]


def test_a_chunked_body_over_the_cap_is_413(servers: tuple[str, str]) -> None:
    pieces = (b"x" * 65536 for _ in range(33))  # 2 MiB + in all, no Content-Length
    answer = exchange(servers[0], "POST", "/api/webhooks/local", {"Transfer-Encoding": "chunked"}, chunked(pieces))
    assert answer.status == 413
    assert "SIMPLETUNER_WEBHOOK_MAX_BYTES" in answer.json()["detail"]


def test_the_per_user_stream_cap_holds_across_processes_on_redis(servers: tuple[str, str], alice: AbstractUser) -> None:
    a, b = servers
    key = client_for(alice).raw_key  # type: ignore[attr-defined]
    with open_stream(a, api_key=key), open_stream(b, api_key=key), open_stream(a, api_key=key):
        with httpx.stream("GET", b + "/api/events/stream", headers={"X-API-Key": key}, timeout=10) as refused:
            assert refused.status_code == 429
            assert "SIMPLETUNER_EVENTS_MAX_PER_USER" in refused.read().decode()
        assert redis.Redis.from_url(require_service("redis")).zcard(f"{SLOTS}events:user:{alice.pk}") == 3
