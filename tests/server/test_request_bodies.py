"""Request bodies are bounded at the ASGI level, before authentication and rate limiting, and
never spooled to disk: the reported attacks replayed against a real `manage.py serve`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from django.conf import settings
from django.contrib.auth.models import AbstractUser

from audit.models import AuditEntry
from providers.credentials import job_upload_credentials
from providers.models import Job, JobStatus
from tests.conftest import client_for
from tests.processes import django_env
from tests.server.live import free_port, running, running_process
from tests.server.raw_http import chunked, exchange

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BOUND = 1024 * 1024  # SIMPLETUNER_MAX_REQUEST_BYTES's default
TOO_LARGE = f"Request body exceeds {BOUND} bytes (SIMPLETUNER_MAX_REQUEST_BYTES)."
PIECE = b"x" * 65536


@pytest.fixture(scope="module")
def tmpdir_of_server(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-tmp")


@pytest.fixture(scope="module")
def served(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory, tmpdir_of_server: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    log = tmp_path_factory.mktemp("bodies") / "server.log"
    port = free_port()
    env = django_env(PORT=str(port), TMPDIR=str(tmpdir_of_server), SIMPLETUNER_BACKGROUND_SYNC="false")
    env.pop("REDIS_URL", None)
    with running_process([sys.executable, "manage.py", "serve"], env, port, log) as (base, proc):
        yield base, proc, log


@pytest.fixture
def server(served: tuple[str, subprocess.Popen[bytes], Path], tmpdir_of_server: Path) -> Iterator[str]:
    base, proc, _ = served
    yield base
    assert temp_files(proc.pid, tmpdir_of_server) == []


def temp_files(pid: int, tmpdir: Path) -> list[str]:
    """Files under the server's TMPDIR: listed, or still open (Python's TemporaryFile unlinks
    its file at once, so only /proc/<pid>/fd shows it)."""
    found = [str(path) for path in tmpdir.iterdir()]
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(tmpdir)):
            found.append(target)
    return found


def pieces(total: int) -> Iterator[bytes]:
    for _ in range(total // len(PIECE)):
        yield PIECE


def access_log_lines(log: Path, request_id: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [
        r for r in records if r.get("logger") == "simpletuner.cloud.access" and r.get("correlation_id") == request_id
    ]


def test_an_anonymous_login_announcing_a_gigabyte_is_refused_before_it_is_sent(
    server: str, served: tuple[str, subprocess.Popen[bytes], Path]
) -> None:
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(1024**3),
        "Expect": "100-continue",
        "X-Request-ID": "bound-login-1",
    }
    answer = exchange(server, "POST", "/api/auth/login", headers)  # not a byte of the body
    assert answer.status == 413  # not "100 Continue": the client is told not to send it
    assert answer.json() == {"detail": TOO_LARGE}
    assert answer.headers["x-request-id"] == "bound-login-1"
    assert answer.headers["connection"] == "close"
    [line] = access_log_lines(served[2], "bound-login-1")
    assert line["message"] == "POST /api/auth/login 413" and line["extra"]["status"] == 413


def test_a_client_sending_the_announced_body_anyway_gets_the_413_mid_body(server: str) -> None:
    headers = {"Content-Type": "application/json", "Content-Length": str(64 * 1024**2)}
    answer = exchange(server, "POST", "/api/auth/login", headers, pieces(64 * 1024**2))
    assert answer.status == 413 and not answer.body_sent
    assert answer.json() == {"detail": TOO_LARGE}


def test_a_chunked_body_to_a_missing_path_is_cut_just_past_the_bound(server: str) -> None:
    headers = {"Transfer-Encoding": "chunked", "X-Request-ID": "bound-chunked-1"}
    answer = exchange(server, "POST", "/no/such/path", headers, chunked(pieces(64 * 1024**2)))
    assert answer.status == 413  # before the 404 the path would get, and before the body ends
    assert not answer.body_sent
    assert answer.json() == {"detail": TOO_LARGE}
    assert answer.headers["x-request-id"] == "bound-chunked-1"
    assert answer.headers["connection"] == "close"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_of_exactly_the_bound_reaches_the_view(server: str, framing: str) -> None:
    body = [b"x" * BOUND]
    if framing == "chunked":
        headers, sent = {"Transfer-Encoding": "chunked"}, chunked(body)
    else:
        headers, sent = {"Content-Length": str(BOUND)}, iter(body)
    answer = exchange(server, "POST", "/no/such/path", headers, sent)
    assert answer.status == 404 and answer.body_sent
    assert "connection" not in answer.headers  # kept alive, as for any request
    over = exchange(server, "POST", "/no/such/path", {"Content-Length": str(BOUND + 1)}, iter([b"x" * (BOUND + 1)]))
    assert over.status == 413


def test_a_job_submit_with_an_oversized_config_reaches_its_validation(server: str, alice: AbstractUser) -> None:
    """The default bound leaves room for a job's 256 KiB of configs (here over it, indented)."""
    key = client_for(alice).raw_key  # type: ignore[attr-defined]
    config = {f"option_{n}": "v" * 40 for n in range(7000)}  # ~370 KB as sent, indented
    body = json.dumps({"provider": "local", "config": config}, indent=4).encode()
    assert 256 * 1024 < len(body) < BOUND
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Content-Length": str(len(body))}
    answer = exchange(server, "POST", "/api/cloud/jobs/submit", headers, iter([body]))
    assert answer.status == 400
    assert "262144" in json.dumps(answer.json())
    assert not Job.objects.exists()


def test_the_storage_endpoint_still_streams_bodies_past_the_bound(server: str, alice: AbstractUser) -> None:
    job = Job.objects.create(owner=alice, provider="local", status=JobStatus.RUNNING)
    creds = job_upload_credentials(job)
    s3 = boto3.client(
        "s3",
        endpoint_url=server + "/api/cloud/storage",
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        region_name=creds.region,
        config=Config(s3={"addressing_style": "path"}),
    )
    try:
        s3.put_object(Bucket=job.pk, Key="ckpt/model.bin", Body=b"m" * (3 * BOUND))
        assert s3.head_object(Bucket=job.pk, Key="ckpt/model.bin")["ContentLength"] == 3 * BOUND
    finally:
        shutil.rmtree(settings.OUTPUTS_DIR / job.pk, ignore_errors=True)  # the machine is shared


def test_a_webhook_over_its_own_cap_is_answered_and_audited_by_the_webhook_view(server: str) -> None:
    headers = {"Transfer-Encoding": "chunked", "Content-Type": "application/json"}
    answer = exchange(server, "POST", "/api/webhooks/local", headers, chunked(pieces(64 * 1024**2)))
    assert answer.status == 413 and not answer.body_sent
    assert "SIMPLETUNER_WEBHOOK_MAX_BYTES" in answer.json()["detail"]
    assert answer.headers["connection"] == "close"
    assert AuditEntry.objects.get(event_type="webhook_rejected").details["reason"] == "too_large"


def test_daphne_answers_the_bound_the_same_way(django_db_setup: None, tmp_path: Path) -> None:
    """Under daphne, Twisted receives a whole body before the application sees the request, so
    the body is sent in full here; the answer is the same."""
    port = free_port()
    env = django_env(PORT=str(port), SIMPLETUNER_BACKGROUND_SYNC="false")
    env.pop("REDIS_URL", None)
    argv = [sys.executable, "manage.py", "serve", "--server", "daphne"]
    with running(argv, env, port, tmp_path / "daphne.log") as base:
        headers = {"Content-Length": str(BOUND + 1), "X-Request-ID": "bound-daphne-1"}
        answer = exchange(base, "POST", "/api/auth/login", headers, iter([b"x" * (BOUND + 1)]))
    assert answer.status == 413
    assert answer.json() == {"detail": TOO_LARGE}
    assert answer.headers["x-request-id"] == "bound-daphne-1"
