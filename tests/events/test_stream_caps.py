"""Open streams are capped per user and per instance, across server processes, and the slots
of a process killed without cleanup come free by themselves (two real servers, one database)."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import AbstractUser

from cloudops.ratelimit.models import SlotLease
from tests.conftest import client_for
from tests.events.conftest import assert_no_unhandled_errors, server_env
from tests.events.sse import open_stream
from tests.server.live import free_port, running_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CAPS = {"SIMPLETUNER_EVENTS_MAX_PER_USER": "2", "SIMPLETUNER_EVENTS_MAX_STREAMS": "3"}


def serve(jobs_dir: Path, log: Path, **extra: str):  # type: ignore[no-untyped-def]
    port = free_port()
    env = server_env(jobs_dir, PORT=str(port), **CAPS, **extra)
    return running_process([sys.executable, "manage.py", "serve", "--port", str(port)], env, port, log)


@pytest.fixture(scope="module")
def servers(
    django_db_setup: None, jobs_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    logs = tmp_path_factory.mktemp("caps")
    with serve(jobs_dir, logs / "a.log") as (a, _), serve(jobs_dir, logs / "b.log") as (b, _):
        yield a, b
    assert_no_unhandled_errors(logs / "a.log")
    assert_no_unhandled_errors(logs / "b.log")


def key_of(user: AbstractUser) -> str:
    return client_for(user).raw_key  # type: ignore[attr-defined]


def get_stream(base: str, key: str) -> httpx.Response:
    """Ask for a stream; a refusal is the whole answer, an admitted stream is closed at once."""
    with httpx.stream("GET", base + "/api/events/stream", headers={"Authorization": f"Bearer {key}"}, timeout=10) as r:
        if r.status_code != 200:
            r.read()
        return r


def until_admitted(base: str, key: str, timeout: float = 30) -> list[int]:
    """Statuses of repeated attempts until one is admitted (a slot frees asynchronously)."""
    statuses: list[int] = []
    deadline = time.monotonic() + timeout
    while not statuses or statuses[-1] != 200:
        assert time.monotonic() < deadline, statuses
        statuses.append(get_stream(base, key).status_code)
        if statuses[-1] != 200:
            time.sleep(0.2)
    return statuses


def test_the_per_user_cap_holds_across_processes(servers: tuple[str, str], alice: AbstractUser) -> None:
    a, b = servers
    key = key_of(alice)
    with open_stream(a, api_key=key), open_stream(b, api_key=key):
        refused = get_stream(a, key)
        assert refused.status_code == 429
        assert "SIMPLETUNER_EVENTS_MAX_PER_USER" in refused.json()["detail"]
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["X-Request-ID"]
        assert get_stream(b, key).status_code == 429
        assert SlotLease.objects.filter(owner=f"user:{alice.pk}").count() == 2
    # Closing a stream frees its slot (released when the server sees the disconnect).
    until_admitted(b, key)


def test_the_instance_cap_holds_for_every_user(
    servers: tuple[str, str], alice: AbstractUser, bob: AbstractUser, olivia: AbstractUser
) -> None:
    a, b = servers
    with (
        open_stream(a, api_key=key_of(alice)),
        open_stream(b, api_key=key_of(bob)),
        open_stream(a, api_key=key_of(bob)),
    ):
        refused = get_stream(b, key_of(olivia))  # staff too: the cap protects the server
        assert refused.status_code == 429
        assert "SIMPLETUNER_EVENTS_MAX_STREAMS" in refused.json()["detail"]
        assert int(refused.headers["Retry-After"]) >= 1
    until_admitted(b, key_of(olivia))


def test_the_slots_of_a_killed_process_come_free_when_their_leases_run_out(
    servers: tuple[str, str], jobs_dir: Path, tmp_path: Path, alice: AbstractUser
) -> None:
    a, _ = servers
    key = key_of(alice)
    with (
        serve(jobs_dir, tmp_path / "doomed.log", SIMPLETUNER_EVENTS_SLOT_LEASE="5") as (doomed, proc),
        ExitStack() as streams,
    ):
        for _ in range(2):
            streams.enter_context(open_stream(doomed, api_key=key))
        os.killpg(proc.pid, signal.SIGKILL)  # no cleanup: both slots stay taken
        proc.wait()
        assert SlotLease.objects.filter(owner=f"user:{alice.pk}").count() == 2
        assert get_stream(a, key).status_code == 429
        statuses = until_admitted(a, key)
    assert statuses[-1] == 200
