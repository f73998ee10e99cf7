"""A stream resuming after an event that Redis refused to carry still gets that event.

Found by the soak run (bench/soak.py, its `hang redis` fault): while Redis hung, one process
recorded an event whose live message the layer refused; after the hang another process's later
event reached the client's stream through the layer, and the client lost its connection before
the stream's next heartbeat caught up from the event rows. It reconnected with the later id as
Last-Event-ID, and the stream started after it: the refused event was never sent. Refused
events are now marked in the buffer, and a resuming stream sends those recorded in the last
few heartbeats at or below Last-Event-ID.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import AbstractUser

from providers.events import event_record
from providers.models import Job, JobStatus, LiveEvent
from tests.conftest import client_for
from tests.events.conftest import deliver, server_env
from tests.events.sse import Stream
from tests.redis.server import RedisServer, redis_server
from tests.server.live import free_port, running

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def redis_and_server(django_db_setup: None, jobs_dir: Path, tmp_path: Path) -> Iterator[tuple[RedisServer, str]]:
    with redis_server(tmp_path) as redis:
        port = free_port()
        env = server_env(jobs_dir, PORT=str(port), REDIS_URL=redis.url, REDIS_TIMEOUT="0.5")
        argv = [sys.executable, "manage.py", "serve", "--port", str(port)]
        with running(argv, env, port, tmp_path / "server.log") as base:
            yield redis, base


def stream_after(base: str, api_key: str, last_event_id: int, client: httpx.Client) -> Stream:
    """Open the stream as EventSource does: a 503 (the layer still recovering) is retried."""
    deadline = time.monotonic() + 30
    while True:
        request = client.build_request(
            "GET",
            base + "/api/events/stream",
            headers={"Authorization": f"Bearer {api_key}", "Last-Event-ID": str(last_event_id)},
        )
        response = client.send(request, stream=True)
        if response.status_code == 200:
            return Stream(response)
        response.close()
        assert response.status_code == 503 and time.monotonic() < deadline, response.status_code
        time.sleep(0.5)


def test_a_stream_resuming_past_an_event_redis_refused_still_gets_it(
    redis_and_server: tuple[RedisServer, str], alice: AbstractUser
) -> None:
    redis, base = redis_and_server
    job = Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED)
    with redis.hung():
        delivered = deliver(base, "local", {"type": "training.status", "data": {"status": "running"}, "job_id": job.pk})
        assert delivered.status_code == 200  # applied; its live message refused
    refused = LiveEvent.objects.filter(job_id=job.pk).latest("id")
    # A later event, which the client got through the layer before its stream caught up.
    later = event_record(kind="job.progress", job_id=job.pk, owner_id=alice.pk, data={"job_id": job.pk})
    key = client_for(alice).raw_key  # type: ignore[attr-defined]
    with httpx.Client(timeout=httpx.Timeout(10, read=10)) as client:
        stream = stream_after(base, key, later["id"], client)
        try:
            got = stream.until(lambda m: m.id is not None)
        finally:
            stream.response.close()
    assert int(got.id) == refused.pk  # type: ignore[arg-type]
    assert got.json["status"] == "running"
