"""A hung Redis (SIGSTOP) must not hang requests (issue 13, findings 6 and 7).

Replays the fault run: real `manage.py serve` processes on the test database and a Redis of
the test's own, stopped by hand. Before the fix a submit took 6.7 s, a webhook 5.7 s, health
6.6 s and a scrape 11.6 s (past Prometheus' 10 s timeout), and the scrape had no job metrics.
Every Redis use now gives up after REDIS_TIMEOUT (1 s) and degrades as the table in docs/deploying.md says.
How long a request waits is bounded by construction, not timed here (no timed asserts in tests):
settings give every Redis client REDIS_TIMEOUT (tests/config/test_settings.py) and a process that
saw Redis fail skips it for a while (tests/redis/test_degraded_backends.py). These tests check
what the servers answer while Redis hangs, and that they took the degraded path to answer it.
Requests come from loopback, which the rate limiter does not count: its own timeout
(RATE_LIMIT_REDIS_TIMEOUT) has its own tests.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from django.contrib.auth.models import AbstractUser

from cloudops.metrics.services import metrics_config_update
from providers.models import Job, JobStatus, LiveEvent
from tests.conftest import client_for
from tests.events.conftest import deliver, server_env
from tests.events.sse import open_stream
from tests.fakes.replicate import FakeReplicate
from tests.metrics.scrape import PROMETHEUS_PATH, samples
from tests.redis.server import RedisServer
from tests.server.live import free_port, running
from tests.webhooks.deliveries import prediction

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

UNAVAILABLE = "Redis is unavailable"  # cloudops.redis_backends.Outage's warning


@pytest.fixture(scope="module")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


def took_the_degraded_path(server_logs: Path, server: int) -> bool:
    """Whether server 0 or 1 noticed Redis fail (and so skips it for a while), rather than
    waiting on it until it answered."""
    return UNAVAILABLE in (server_logs / f"{'ab'[server]}.log").read_text()


@pytest.fixture(scope="module")
def fake_replicate() -> Iterator[FakeReplicate]:
    fake = FakeReplicate().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def servers(
    django_db_setup: None,
    jobs_dir: Path,
    server_logs: Path,
    redis_process: RedisServer,
    fake_replicate: FakeReplicate,
) -> Iterator[tuple[str, str]]:
    """Two server processes sharing the test database and the test's Redis."""
    logs = server_logs
    extra = {
        "REDIS_URL": redis_process.url,
        "REPLICATE_API_BASE_URL": fake_replicate.base_url,
        "REPLICATE_API_TOKEN": fake_replicate.token,
    }
    port_a, port_b = free_port(), free_port()
    env_a, env_b = server_env(jobs_dir, PORT=str(port_a), **extra), server_env(jobs_dir, PORT=str(port_b), **extra)
    for env in (env_a, env_b):
        env.pop("REPLICATE_WEBHOOK_SECRET", None)  # fetched from (fake) Replicate, cached in Redis
    serve = [sys.executable, "manage.py", "serve", "--port"]
    with (
        running([*serve, str(port_a)], env_a, port_a, logs / "a.log") as a,
        running([*serve, str(port_b)], env_b, port_b, logs / "b.log") as b,
    ):
        yield a, b


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(base + PROMETHEUS_PATH, timeout=30)
    assert response.status_code == 200, response.text
    return samples(response.text)


def test_a_scrape_answers_with_job_metrics_from_the_database_while_redis_hangs(
    servers: tuple[str, str], server_logs: Path, redis_process: RedisServer, alice: AbstractUser
) -> None:
    metrics_config_update(prometheus_enabled=True, prometheus_categories=["jobs", "rate_limits", "provider"])
    Job.objects.create(owner=alice, provider="local", status=JobStatus.RUNNING)
    Job.objects.create(owner=alice, provider="local", status=JobStatus.COMPLETED)
    with redis_process.hung():
        for base in servers:
            found = scrape(base)
            assert found[("simpletuner_jobs_total", ())] == 2
            assert found[("simpletuner_jobs_by_status", (("status", "running"),))] == 1
            assert found[("simpletuner_jobs_active", ())] == 1
            # No made-up zero for what only Redis knows.
            assert ("simpletuner_rate_limit_violations_total", ()) not in found
    assert took_the_degraded_path(server_logs, 0) and took_the_degraded_path(server_logs, 1)


def test_a_submit_succeeds_while_redis_hangs(
    servers: tuple[str, str], server_logs: Path, redis_process: RedisServer, alice: AbstractUser
) -> None:
    api_key = client_for(alice).raw_key  # type: ignore[attr-defined]
    body = {"provider": "local", "config": {"max_train_steps": 1, "step_seconds": 0}, "name": "during-outage"}
    with redis_process.hung():
        response = httpx.post(
            servers[0] + "/api/cloud/jobs/submit", json=body, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
        )
        assert response.status_code == 201, response.text
    assert took_the_degraded_path(server_logs, 0)
    job = Job.objects.get(pk=response.json()["job_id"])
    assert job.owner_id == alice.pk and job.name == "during-outage"
    # Lost for live listeners, not for the replay buffer: a client resuming with Last-Event-ID gets it.
    assert LiveEvent.objects.filter(job_id=job.pk, kind="job.status").exists()


def test_a_webhook_is_applied_while_redis_hangs(
    servers: tuple[str, str], server_logs: Path, redis_process: RedisServer, alice: AbstractUser
) -> None:
    job = Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED)
    with redis_process.hung():
        payload = {"type": "training.status", "data": {"status": "running"}, "job_id": job.pk}
        response = deliver(servers[1], "local", payload)
        assert response.status_code == 200 and response.json()["status"] == "received", response.text
    assert took_the_degraded_path(server_logs, 1)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert LiveEvent.objects.filter(job_id=job.pk, data__status="running").exists()


def test_a_replicate_webhook_fetches_the_secret_from_replicate_while_redis_hangs(
    servers: tuple[str, str],
    server_logs: Path,
    redis_process: RedisServer,
    alice: AbstractUser,
    fake_replicate: FakeReplicate,
) -> None:
    job = Job.objects.create(
        owner=alice, provider="replicate", external_id="p8rdm4lz2hrga0cmk1rt6zvq5w", hardware="gpu-l40s"
    )
    body = json.dumps(prediction("processing")).encode()
    signed = fake_replicate.sign(body, msg_id="msg_hung_redis", timestamp=int(time.time()))
    fetches = len(fake_replicate.requests_to("GET", "/webhooks/default/secret"))
    with redis_process.hung():
        response = httpx.post(f"{servers[0]}/api/webhooks/replicate", content=body, headers=signed, timeout=30)
        assert response.status_code == 200 and response.json()["status"] == "received", response.text
    assert took_the_degraded_path(server_logs, 0)
    # The cached secret could not be read, so it was fetched: a miss, not a failure.
    assert len(fake_replicate.requests_to("GET", "/webhooks/default/secret")) == fetches + 1
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


def test_health_reports_the_channel_layer_down_while_redis_hangs(
    servers: tuple[str, str], server_logs: Path, redis_process: RedisServer
) -> None:
    with redis_process.hung():
        response = httpx.get(servers[0] + "/api/cloud/health", timeout=30)
    assert took_the_degraded_path(server_logs, 0)
    components = {c["name"]: c for c in response.json()["components"]}
    assert components["channel_layer"]["status"] == "degraded"
    assert "live events" in components["channel_layer"]["message"]
    assert components["database"]["status"] == "healthy"
    # Degraded, not unhealthy: jobs, webhooks and scrapes still work, so the server stays in service.
    assert response.status_code == 200 and response.json()["status"] == "degraded"


def wait_for_healthy_channel_layer(base: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        components = httpx.get(base + "/api/cloud/health", timeout=30).json()["components"]
        if next(c for c in components if c["name"] == "channel_layer")["status"] == "healthy":
            return
        assert time.monotonic() < deadline, components
        time.sleep(0.2)


def test_everything_recovers_when_redis_resumes(
    servers: tuple[str, str], redis_process: RedisServer, alice: AbstractUser
) -> None:
    a, b = servers
    metrics_config_update(prometheus_enabled=True, prometheus_categories=["jobs"])
    job = Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED)
    with redis_process.hung():
        assert scrape(a)[("simpletuner_jobs_total", ())] == 1
    for base in servers:
        wait_for_healthy_channel_layer(base)
    # Live events cross processes again...
    with open_stream(b, api_key=client_for(alice).raw_key) as on_b:  # type: ignore[attr-defined]
        payload = {"type": "training.status", "data": {"status": "running"}, "job_id": job.pk}
        assert deliver(a, "local", payload).json()["status"] == "received"
        assert on_b.until(lambda m: m.event == "job.status").json["status"] == "running"
    # ...and the aggregates are shared through Redis again once a scrape computes them.
    deadline = time.monotonic() + 30
    client = redis.Redis.from_url(redis_process.url)
    while not client.keys("*cloudops:metrics:jobs"):
        scrape(a)
        assert time.monotonic() < deadline, "the job aggregates never reached Redis after it resumed"
        time.sleep(0.2)
