"""An open stream gets every recorded event, even one the channel layer never brought it.

Found by the soak run (bench/soak.py): with several processes on PostgreSQL and Redis, a stream
missed an event another process committed. Two holes: the stream caught up from the event rows
only when it had been quiet for a whole heartbeat (a busy stream never did), and only above the
highest id it had sent, while ids come from the sequence in insert order and a transaction that
took a lower id can commit after a higher one was sent. Now every heartbeat, busy or quiet,
sends the rows of the last few heartbeats the stream has not sent, deduplicated by id.

The events "lost" here are recorded by this test process, whose channel layer is not the
server's: exactly an event whose live message never arrived (a Redis restart, a process killed
between the commit and the send).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import connection, connections, transaction

from providers.events import event_record
from providers.models import Job, JobStatus
from tests.conftest import client_for
from tests.events.conftest import deliver
from tests.events.sse import open_stream

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def new_job(owner: AbstractUser) -> Job:
    return Job.objects.create(owner=owner, provider="local", status=JobStatus.QUEUED)


def progress(job: Job, step: int) -> dict[str, Any]:
    return {"type": "training.progress", "data": {"step": step, "total_steps": 100_000}, "job_id": job.pk}


def record_unsent(job: Job, marker: str) -> int:
    """Record an event of `job` as the server would, without its live message."""
    message = event_record(kind="job.status", job_id=job.pk, owner_id=job.owner_id, data={"marker": marker})
    return int(message["id"])


class Busy:
    """Progress webhooks for `job`, one after another, until stopped: the stream never has a
    quiet heartbeat, and each event it gets has a higher id than anything recorded before."""

    def __init__(self, server: str, job: Job) -> None:
        self.server, self.job, self.stop = server, job, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        step = 0
        while not self.stop.is_set():
            step += 1
            deliver(self.server, "local", progress(self.job, step))

    @classmethod
    @contextmanager
    def running(cls, server: str, job: Job) -> Iterator[Busy]:
        busy = cls(server, job)
        busy.thread.start()
        try:
            yield busy
        finally:
            busy.stop.set()
            busy.thread.join()


def test_a_busy_stream_gets_an_event_the_channel_layer_never_brought(server: str, alice: AbstractUser) -> None:
    quiet, chatty = new_job(alice), new_job(alice)
    key = client_for(alice).raw_key  # type: ignore[attr-defined]
    with open_stream(server, api_key=key) as stream, Busy.running(server, chatty):
        stream.until(lambda m: m.event == "job.progress" and m.json["job_id"] == chatty.pk)
        lost = record_unsent(quiet, "lost")
        # Later events (higher ids) keep arriving through the layer meanwhile.
        got = stream.until(lambda m: m.event == "job.status" and m.json.get("marker") == "lost", timeout=20)
    assert int(got.id) == lost  # type: ignore[arg-type]
    ids = [int(m.id) for m in stream.events()]  # type: ignore[arg-type]
    assert len(ids) == len(set(ids))  # sent once, not once per heartbeat


def test_an_event_committed_after_a_higher_id_was_sent_still_reaches_the_stream(
    server: str, alice: AbstractUser
) -> None:
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer at a time: ids commit in order")
    job = new_job(alice)
    holding, release = threading.Event(), threading.Event()
    recorded: list[int] = []

    def slow_transaction() -> None:
        # Takes its id now, commits later: another process's transaction that is still working.
        try:
            with transaction.atomic():
                recorded.append(record_unsent(job, "late"))
                holding.set()
                release.wait(timeout=60)
        finally:
            connections.close_all()

    with open_stream(server, api_key=client_for(alice).raw_key) as stream:  # type: ignore[attr-defined]
        thread = threading.Thread(target=slow_transaction)
        thread.start()
        assert holding.wait(timeout=30), "the transaction did not start"
        # A higher id, committed and sent through the layer first.
        assert deliver(server, "local", progress(job, 1)).status_code == 200
        higher = stream.until(lambda m: m.id is not None and m.json["job_id"] == job.pk)
        release.set()
        thread.join()
        late = stream.until(lambda m: m.event == "job.status" and m.json.get("marker") == "late", timeout=20)
    assert int(late.id) == recorded[0] < int(higher.id)  # type: ignore[arg-type]
