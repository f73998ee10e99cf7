"""GET /api/events/stream against a real server: auth, filtering, heartbeats, resume,
live job and upload events, and a local job reporting through signed webhooks."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from django.contrib.auth.models import AbstractUser
from django.db import connection

from providers.credentials import job_upload_credentials
from providers.models import Job, JobStatus, LiveEvent, WebhookDelivery
from tests.conftest import client_for
from tests.events.conftest import assert_no_unhandled_errors, deliver, server_env
from tests.events.sse import Stream, open_stream
from tests.server.live import free_port, process_status, running

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def key_of(user: AbstractUser) -> str:
    return client_for(user).raw_key  # type: ignore[attr-defined]


def status(job: Job, value: str) -> dict[str, Any]:
    return {"type": "training.status", "data": {"status": value}, "job_id": job.pk}


def progress(job: Job, step: int) -> dict[str, Any]:
    return {"type": "training.progress", "data": {"step": step, "total_steps": 10}, "job_id": job.pk}


def is_job(job: Job, kind: str = "job.status") -> Callable[[Any], bool]:
    return lambda m: m.event == kind and m.json["job_id"] == job.pk


def new_job(owner: AbstractUser) -> Job:
    return Job.objects.create(owner=owner, provider="local", status=JobStatus.QUEUED)


def test_the_stream_requires_authentication(server: str, alice: AbstractUser) -> None:
    anonymous = httpx.get(server + "/api/events/stream", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    revoked = httpx.get(server + "/api/events/stream", headers={"X-API-Key": "cok_nonsense"}, timeout=10)
    assert revoked.status_code == 401
    assert revoked.json() == {"detail": "Invalid or revoked API key."}


def test_a_session_login_opens_the_stream(server: str, alice: AbstractUser, settings: Any) -> None:
    # The tests hash passwords with MD5 for speed; the server only knows production hashers.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    alice.set_password("correct horse battery staple")
    alice.save()
    with httpx.Client(base_url=server, timeout=10) as client:
        login = client.post("/api/auth/login", json={"username": "alice", "password": "correct horse battery staple"})
        assert login.status_code == 200, login.text
        with client.stream("GET", "/api/events/stream") as response:
            assert response.status_code == 200
            assert response.headers["cache-control"] == "no-cache"


def test_users_see_their_own_jobs_and_staff_see_all(
    server: str, alice: AbstractUser, bob: AbstractUser, olivia: AbstractUser
) -> None:
    alices, bobs = new_job(alice), new_job(bob)
    with (
        open_stream(server, api_key=key_of(alice)) as alice_stream,
        open_stream(server, api_key=key_of(bob)) as bob_stream,
        open_stream(server, api_key=key_of(olivia)) as staff_stream,
    ):
        assert deliver(server, "local", status(bobs, "running")).status_code == 200
        assert deliver(server, "local", status(alices, "running")).status_code == 200
        seen = alice_stream.until(lambda m: m.id is not None)
        assert seen.event == "job.status"
        assert seen.json["job_id"] == alices.pk  # the first event alice sees is her own, not bob's
        assert seen.json["status"] == "running" and seen.json["previous_status"] == "queued"
        assert bob_stream.until(lambda m: m.id is not None).json["job_id"] == bobs.pk
        staff_stream.until(is_job(bobs))
        staff_stream.until(is_job(alices))
        # Bob never sees alice's job, even later.
        assert deliver(server, "local", status(bobs, "completed")).status_code == 200
        assert bob_stream.until(lambda m: m.id is not None).json["status"] == "completed"
        assert all(m.json["job_id"] == bobs.pk for m in bob_stream.events())


def test_revoking_the_api_key_ends_its_open_streams(server: str, alice: AbstractUser, olivia: AbstractUser) -> None:
    client = client_for(alice)
    key_id = client.get("/api/auth/api-keys").json()["api_keys"][0]["id"]
    with open_stream(server, api_key=client.raw_key) as stream:  # type: ignore[attr-defined]
        stream.until(lambda m: "heartbeat" in m.comments, timeout=5)
        assert client.delete(f"/api/auth/api-keys/{key_id}").status_code == 200
        ended = stream.until(lambda m: m.event == "unauthorized", timeout=10)
        assert "revoked" in ended.json["detail"]
        with pytest.raises(EOFError):
            stream.next()


def test_logging_out_ends_a_session_stream(server: str, alice: AbstractUser, settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    alice.set_password("correct horse battery staple")
    alice.save()
    with httpx.Client(base_url=server, timeout=10) as browser:
        browser.post("/api/auth/login", json={"username": "alice", "password": "correct horse battery staple"})
        with (
            httpx.Client(base_url=server, timeout=10, cookies=browser.cookies) as tab,
            tab.stream("GET", "/api/events/stream") as response,
        ):
            stream = Stream(response)
            stream.until(lambda m: "heartbeat" in m.comments, timeout=5)
            csrf = {"X-CSRFToken": browser.cookies.get("csrftoken", "")}
            assert browser.post("/api/auth/logout", headers=csrf).status_code == 200
            assert stream.until(lambda m: m.event == "unauthorized", timeout=10)


def test_a_demoted_staff_users_stream_ends_and_reopens_with_their_own_jobs_only(
    server: str, olivia: AbstractUser, bob: AbstractUser
) -> None:
    """The reported defect: staff rights were read once, at open, so a demoted user kept
    receiving every user's events on an open stream. The re-check now reads the user again."""
    key = key_of(olivia)
    olivias, bobs = new_job(olivia), new_job(bob)
    with open_stream(server, api_key=key) as stream:
        assert deliver(server, "local", status(bobs, "running")).status_code == 200
        stream.until(is_job(bobs))  # staff: every user's jobs
        olivia.is_staff = olivia.is_superuser = False
        olivia.save()
        ended = stream.until(lambda m: m.event == "reconnect", timeout=10)
        assert "reconnect" in ended.json["detail"]
        with pytest.raises(EOFError):
            stream.next()
    with open_stream(server, api_key=key) as stream:
        assert deliver(server, "local", progress(bobs, 3)).status_code == 200
        assert deliver(server, "local", status(olivias, "running")).status_code == 200
        assert stream.until(lambda m: m.id is not None).json["job_id"] == olivias.pk


def test_heartbeats_keep_an_idle_stream_alive(server: str, alice: AbstractUser) -> None:
    with open_stream(server, api_key=key_of(alice)) as stream:
        beats = [stream.until(lambda m: "heartbeat" in m.comments, timeout=5) for _ in range(2)]
        assert len(beats) == 2


def test_a_client_disconnecting_ends_its_subscription(server: str, server_log: Path, alice: AbstractUser) -> None:
    def closed() -> int:
        return server_log.read_text().count('"message": "event stream closed"')

    before = closed()
    with open_stream(server, api_key=key_of(alice)) as stream:
        stream.until(lambda m: "heartbeat" in m.comments, timeout=5)
    deadline = time.monotonic() + 10
    while closed() == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert closed() == before + 1


def test_a_reconnecting_client_resumes_after_last_event_id(server: str, alice: AbstractUser, bob: AbstractUser) -> None:
    job, other = new_job(alice), new_job(bob)
    with open_stream(server, api_key=key_of(alice)) as stream:
        deliver(server, "local", status(job, "running"))
        last = stream.until(is_job(job))
    # Disconnected: these happen while nobody listens.
    deliver(server, "local", progress(job, 3))
    deliver(server, "local", status(other, "running"))
    deliver(server, "local", progress(job, 6))
    with open_stream(server, api_key=key_of(alice), headers={"Last-Event-ID": last.id}) as stream:
        first = stream.until(lambda m: m.id is not None)
        second = stream.until(lambda m: m.id is not None)
    assert [first.event, second.event] == ["job.progress", "job.progress"]
    assert [first.json["progress"]["current"], second.json["progress"]["current"]] == [3, 6]
    assert int(last.id) < int(first.id) < int(second.id)


def test_resuming_past_the_buffer_says_events_were_lost(server: str, alice: AbstractUser) -> None:
    rows = [LiveEvent.objects.create(kind="job.status", job_id="j", owner_id=alice.pk, data={"n": n}) for n in range(3)]
    first_id = rows[0].pk
    LiveEvent.objects.filter(pk=first_id).delete()  # pruned from the buffer
    gone = str(first_id - 1)
    with open_stream(server, api_key=key_of(alice), headers={"Last-Event-ID": gone}) as stream:
        assert stream.next().event == "reset"
        assert [stream.next().json["n"], stream.next().json["n"]] == [1, 2]
    with open_stream(server, api_key=key_of(alice), headers={"Last-Event-ID": str(first_id)}) as stream:
        assert stream.next().json["n"] == 1  # nothing after that id was pruned: no reset


def test_a_malformed_last_event_id_is_400(server: str, alice: AbstractUser) -> None:
    response = httpx.get(
        server + "/api/events/stream", headers={"Authorization": f"Bearer {key_of(alice)}", "Last-Event-ID": "abc"}
    )
    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()["detail"]


def test_a_completed_upload_is_an_event_for_the_jobs_owner(server: str, alice: AbstractUser) -> None:
    job = new_job(alice)
    creds = job_upload_credentials(job)
    s3 = boto3.client(
        "s3",
        endpoint_url=server + "/api/cloud/storage",
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        region_name=creds.region,
        config=Config(s3={"addressing_style": "path"}),
    )
    with open_stream(server, api_key=key_of(alice)) as stream:
        s3.put_object(Bucket=job.pk, Key="samples/step-10.png", Body=b"x" * 1234)
        event = stream.until(lambda m: m.event == "upload.completed")
    assert event.json == {
        "job_id": job.pk,
        "bucket": job.pk,
        "key": "samples/step-10.png",
        "size": 1234,
        "upload_objects": 1,
        "upload_bytes": 1234,
    }


def test_a_local_job_reports_through_signed_webhooks(server: str, alice: AbstractUser) -> None:
    api_key = key_of(alice)
    headers = {"Authorization": f"Bearer {api_key}"}
    with open_stream(server, api_key=api_key) as stream:
        submitted = httpx.post(
            server + "/api/cloud/jobs/submit",
            json={"provider": "local", "config": {"max_train_steps": 3, "step_seconds": 0.2, "checkpoint_size_mb": 0}},
            headers=headers,
            timeout=30,
        )
        assert submitted.status_code == 201, submitted.text
        job_id = submitted.json()["job_id"]
        staged = stream.until(lambda m: m.event == "job.progress" and m.json["progress"].get("stage") == "training")
        done = stream.until(lambda m: m.event == "job.status" and m.json["status"] == "completed", timeout=30)
    assert staged.json["job_id"] == job_id and done.json["job_id"] == job_id
    # "stage" only comes from the trainer's lifecycle.stage webhooks (progress.json has none).
    assert WebhookDelivery.objects.filter(provider="local").count() >= 3


def server_connections() -> int:
    """Connections to the test database on PostgreSQL / MariaDB (ours included)."""
    query = {
        "postgresql": "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()",
        "mysql": "SELECT count(*) FROM information_schema.processlist WHERE db = DATABASE()",
    }[connection.vendor]
    with connection.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchone()[0]


def test_open_streams_hold_no_database_connection(
    django_db_setup: None, jobs_dir: Path, tmp_path: Path, alice: AbstractUser
) -> None:
    """Counted as the fewest connections over a few samples: the streams' re-checks and the
    server's background passes each open one for a moment (which, under load, one sample
    caught), while a stream holding one would show in every sample. The server keeps its
    rate-limit state in memory here: with the database state, the slot refreshes borrow
    from the checks' shared pool, whose size (at most sqlpool.POOL_SIZE) follows how many
    ran at once, not how many streams are open."""
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no server-side connections to count")
    port = free_port()
    env = server_env(jobs_dir, PORT=str(port), STATE_BACKEND="memory")
    argv = [sys.executable, "manage.py", "serve", "--port", str(port)]
    key = key_of(alice)
    with running(argv, env, port, tmp_path / "server.log") as base:
        before = fewest_server_connections()
        with ExitStack() as stack:
            headers: list[dict[str, str]] = [{}, {"Last-Event-ID": "0"}, {}]
            streams = [stack.enter_context(open_stream(base, api_key=key, headers=h)) for h in headers]
            for stream in streams:
                stream.until(lambda m: "heartbeat" in m.comments, timeout=5)
            time.sleep(1.5)  # SIMPLETUNER_EVENTS_REAUTH_SECONDS=1: every stream has been re-checked
            assert fewest_server_connections() <= before


def fewest_server_connections(samples: int = 10, interval: float = 0.1) -> int:
    fewest = server_connections()
    for _ in range(samples - 1):
        time.sleep(interval)
        fewest = min(fewest, server_connections())
    return fewest


def test_open_streams_hold_no_thread_each(
    served: tuple[str, subprocess.Popen[bytes]], make_user: Callable[..., AbstractUser]
) -> None:
    """The reported attack: one thread per open stream (Django's per-request executor, kept
    for as long as the response body lasts). Now the count stays where it was."""
    base, proc = served
    keys = [key_of(make_user(f"viewer{n}")) for n in range(4)]

    def open_many(stack: ExitStack, per_key: int) -> None:
        streams = [stack.enter_context(open_stream(base, api_key=k)) for k in keys for _ in range(per_key)]
        # Live: past the request's thread-sensitive part, and re-checked (shared pool) at least once.
        for stream in streams:
            stream.until(lambda m: "heartbeat" in m.comments, timeout=10)
        time.sleep(1.5)  # SIMPLETUNER_EVENTS_REAUTH_SECONDS=1: every stream has been re-checked

    with ExitStack() as warm_up:  # the shared pools reach their size here, not below
        open_many(warm_up, per_key=2)
    before = process_status(proc.pid)["threads"]
    with ExitStack() as stack:
        open_many(stack, per_key=10)  # 40 streams, the most the default per-user cap allows
        during = process_status(proc.pid)["threads"]
        with httpx.stream("GET", base + "/api/events/stream", headers={"X-API-Key": keys[0]}, timeout=10) as refused:
            assert refused.status_code == 429
    assert during - before < 10, (before, during)


def test_the_stream_works_under_daphne_too(
    django_db_setup: None, jobs_dir: Path, tmp_path: Path, alice: AbstractUser
) -> None:
    """`manage.py serve --server daphne` is the supported alternative to uvicorn."""
    port = free_port()
    env = server_env(jobs_dir, PORT=str(port))
    argv = [sys.executable, "manage.py", "serve", "--server", "daphne", "--port", str(port)]
    job = new_job(alice)
    with running(argv, env, port, tmp_path / "daphne.log") as base, open_stream(base, api_key=key_of(alice)) as stream:
        stream.until(lambda m: "heartbeat" in m.comments, timeout=5)
        assert deliver(base, "local", status(job, "running")).status_code == 200
        assert stream.until(is_job(job)).json["status"] == "running"
    assert_no_unhandled_errors(tmp_path / "daphne.log")
