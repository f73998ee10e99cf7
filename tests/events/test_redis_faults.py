"""Live event streams through a Redis restart and a Redis hang (issue 13, defect 2: streams
opened before a 2-second Redis restart kept sending heartbeats and never delivered another
event). Their own Redis server, so restarting it disturbs nobody else."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import AbstractUser

from providers.models import Job, JobStatus
from tests.conftest import client_for
from tests.events.conftest import deliver, server_env
from tests.events.sse import open_stream
from tests.redis.server import RedisServer, redis_server, restart_on_same_port
from tests.server.live import free_port, running

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def redis_and_server(django_db_setup: None, jobs_dir: Path, tmp_path: Path) -> Iterator[tuple[RedisServer, str, Path]]:
    with redis_server(tmp_path) as redis:
        port = free_port()
        env = server_env(jobs_dir, PORT=str(port), REDIS_URL=redis.url, REDIS_TIMEOUT="0.5")
        with running(
            [sys.executable, "manage.py", "serve", "--port", str(port)], env, port, tmp_path / "server.log"
        ) as base:
            yield redis, base, tmp_path


def running_event(job: Job) -> dict[str, object]:
    return {"type": "training.status", "data": {"status": "running"}, "job_id": job.pk}


def test_a_stream_opened_before_a_redis_restart_still_gets_every_event(
    redis_and_server: tuple[RedisServer, str, Path], alice: AbstractUser
) -> None:
    redis, base, directory = redis_and_server
    job = Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED)
    with open_stream(base, api_key=client_for(alice).raw_key) as stream:  # type: ignore[attr-defined]
        restart_on_same_port(redis, directory)  # every group's members are gone with it
        assert deliver(base, "local", running_event(job)).status_code == 200
        event = stream.until(lambda m: m.event == "job.status")
        assert event.json["status"] == "running"
        # And the stream stays subscribed: the next event arrives too.
        assert deliver(base, "local", {**running_event(job), "data": {"status": "completed"}}).status_code == 200
        assert stream.until(lambda m: m.event == "job.status" and m.json["status"] == "completed")
        assert len({m.id for m in stream.events("job.status")}) == len(stream.events("job.status"))  # no duplicate


def test_a_stream_open_while_redis_hangs_gets_the_events_from_the_record(
    redis_and_server: tuple[RedisServer, str, Path], alice: AbstractUser
) -> None:
    redis, base, _ = redis_and_server
    job = Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED)
    with open_stream(base, api_key=client_for(alice).raw_key) as stream:  # type: ignore[attr-defined]
        with redis.hung():
            assert deliver(base, "local", running_event(job)).status_code == 200
            event = stream.until(lambda m: m.event == "job.status", timeout=20)
        assert event.json["status"] == "running"


def test_a_stream_asked_for_while_redis_hangs_is_a_503_to_retry(
    redis_and_server: tuple[RedisServer, str, Path], alice: AbstractUser
) -> None:
    redis, base, _ = redis_and_server
    key = client_for(alice).raw_key  # type: ignore[attr-defined]
    with redis.hung():
        response = httpx.get(f"{base}/api/events/stream", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    assert "Live events are unavailable" in response.json()["detail"]
