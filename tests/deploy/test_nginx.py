"""The kit's nginx site: `nginx -t` accepts it, and in front of a real `manage.py serve` it
streams event streams out and uploads in (neither is held back by nginx)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractUser

from providers.config import provider_config_get
from providers.credentials import job_upload_bearer
from providers.models import Job, JobStatus
from tests.conftest import client_for
from tests.deploy.kit import (
    NGINX_SITE,
    Tls,
    make_tls,
    nginx_argv,
    nginx_blocks,
    nginx_location,
    running_nginx,
    site_on_loopback,
    site_with_test_certificate,
    substitute,
    write_nginx_conf,
)
from tests.events.sse import Stream
from tests.processes import django_env
from tests.server.live import free_port, running
from tests.services import require_tool
from tests.webhooks.signing import local_secret_for, signed_headers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MiB = 1 << 20


@pytest.fixture(autouse=True)
def _no_outputs_left() -> Iterator[None]:
    yield
    # The machine is shared: leave no test objects behind.
    shutil.rmtree(settings.OUTPUTS_DIR, ignore_errors=True)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def upstream(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """One real `manage.py serve` on the test database; yields its port."""
    port = free_port()
    env = django_env(
        SIMPLETUNER_BACKGROUND_SYNC="false",
        SIMPLETUNER_EVENTS_HEARTBEAT="0.5",
        SIMPLETUNER_S3_MIN_FREE_BYTES="0",
    )
    # One process: the in-memory channel layer carries its events.
    env.pop("REDIS_URL", None)
    env.pop("PORT", None)
    log = tmp_path_factory.mktemp("server") / "server.log"
    argv = [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with running(argv, env, port, log):
        yield port


def nginx_in_front(tls: Tls, upstream: int, prefix: Path, *, request_buffering: bool = False) -> tuple[Path, int]:
    """The kit's site on free loopback ports in front of `upstream`: (nginx.conf, HTTPS port)."""
    https_port = free_port()
    site = site_on_loopback(tls, https_port=https_port, http_port=free_port(), upstream=upstream)
    if request_buffering:
        # The control experiment: what nginx does by default, which the kit turns off.
        site = substitute(site, r"proxy_request_buffering off;", "proxy_request_buffering on;")
    return write_nginx_conf(prefix, site), https_port


@pytest.fixture(scope="module")
def proxy(tls: Tls, upstream: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx with the kit's site in front of the server; yields its HTTPS base URL."""
    conf, https_port = nginx_in_front(tls, upstream, tmp_path_factory.mktemp("nginx"))
    with running_nginx(require_tool("nginx"), conf, https_port) as base:
        yield base


def test_nginx_accepts_the_site_as_shipped(tls: Tls, tmp_path: Path) -> None:
    nginx = require_tool("nginx")
    conf = write_nginx_conf(tmp_path / "prefix", site_with_test_certificate(tls))
    done = subprocess.run([*nginx_argv(nginx, conf), "-t"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_nginx_t_does_refuse_a_broken_site(tls: Tls, tmp_path: Path) -> None:
    # The check above means something only if nginx -t rejects a wrong directive.
    nginx = require_tool("nginx")
    broken = substitute(
        site_with_test_certificate(tls), r"proxy_request_buffering off;", "proxy_request_buffering offf;"
    )
    conf = write_nginx_conf(tmp_path / "prefix", broken)
    done = subprocess.run([*nginx_argv(nginx, conf), "-t"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "proxy_request_buffering" in done.stderr


# --- Event streams ------------------------------------------------------------------------------


def post_webhook(base: str, tls: Tls, payload: dict) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **signed_headers(local_secret_for(body), body)}
    return httpx.post(f"{base}/api/webhooks/local", content=body, headers=headers, verify=tls.context(), timeout=10)


def test_events_stream_through_nginx_while_the_stream_stays_open(proxy: str, tls: Tls, alice: AbstractUser) -> None:
    job = Job.objects.create(owner=alice, provider="local", status=JobStatus.QUEUED)
    headers = {"Authorization": f"Bearer {client_for(alice).raw_key}"}  # type: ignore[attr-defined]
    with (
        httpx.Client(verify=tls.context(), timeout=httpx.Timeout(10, read=10)) as client,
        client.stream("GET", f"{proxy}/api/events/stream", headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response)
        # The first bytes and the heartbeats arrive while the server keeps the response open:
        # nginx passes each one on instead of waiting for the end (or a full buffer).
        assert "connected" in stream.next().comments
        stream.until(lambda m: "heartbeat" in m.comments, timeout=5)
        # A webhook delivered through nginx reaches the open stream through nginx.
        delivered = post_webhook(
            proxy, tls, {"type": "training.status", "data": {"status": "running"}, "job_id": job.pk}
        )
        assert delivered.status_code == 200, delivered.text
        event = stream.until(lambda m: m.event == "job.status", timeout=10)
        assert event.json["job_id"] == job.pk and event.json["status"] == "running"
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


# --- Uploads --------------------------------------------------------------------------------------


def temp_upload_bytes() -> int:
    """Bytes the server has written so far into uploads in progress (`.s3-tmp/put-*`)."""
    tmp = Path(settings.OUTPUTS_DIR) / ".s3-tmp"
    return sum(p.stat().st_size for p in tmp.glob("put-*")) if tmp.exists() else 0


def wait_for_upstream_bytes(timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if seen := temp_upload_bytes():
            return seen
        time.sleep(0.05)
    return 0


def open_upload(base: str, tls: Tls, job: Job, key: str, size: int) -> ssl.SSLSocket:
    """Start `PUT` of `size` bytes over TLS and send the headers only."""
    port = int(base.rsplit(":", 1)[1])
    sock = tls.context().wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=30), server_hostname="127.0.0.1"
    )
    token = job_upload_bearer(job.upload_token)
    head = (
        f"PUT /api/cloud/storage/{job.pk}/{key} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"X-Upload-Token: {token}\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    )
    sock.sendall(head.encode())
    return sock


def finish_upload(sock: ssl.SSLSocket, rest: bytes) -> str:
    sock.sendall(rest)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    return answer.decode(errors="replace")


@pytest.fixture
def uploader(alice: AbstractUser) -> Job:
    provider_config_get("local")
    return Job.objects.create(owner=alice, provider="local", status=JobStatus.RUNNING)


def test_an_upload_reaches_the_server_while_the_client_is_still_sending(proxy: str, tls: Tls, uploader: Job) -> None:
    body = os.urandom(24 * MiB)
    sent = 8 * MiB
    sock = open_upload(proxy, tls, uploader, "checkpoint/model.bin", len(body))
    sock.sendall(body[:sent])
    # Two thirds of the body are still on the client, and the server is already writing the
    # object: nginx passes the body through as it arrives instead of spooling it first.
    seen = wait_for_upstream_bytes(timeout=30)
    assert 0 < seen <= sent
    answer = finish_upload(sock, body[sent:])
    assert answer.startswith("HTTP/1.1 200"), answer
    stored = Path(settings.OUTPUTS_DIR) / uploader.pk / "checkpoint" / "model.bin"
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(body).digest()
    uploader.refresh_from_db()
    assert uploader.upload_objects == 1 and uploader.upload_bytes == len(body)


def test_with_nginx_default_request_buffering_the_server_sees_nothing_until_the_end(
    tls: Tls, upstream: int, uploader: Job, tmp_path: Path
) -> None:
    # The control experiment for the test above: it can tell the two behaviours apart.
    conf, https_port = nginx_in_front(tls, upstream, tmp_path / "nginx", request_buffering=True)
    with running_nginx(require_tool("nginx"), conf, https_port) as base:
        body = os.urandom(24 * MiB)
        sock = open_upload(base, tls, uploader, "spooled.bin", len(body))
        sock.sendall(body[: 8 * MiB])
        # nginx holds the body in a temporary file of its own and sends nothing upstream yet.
        assert wait_for_upstream_bytes(timeout=3) == 0
        answer = finish_upload(sock, body[8 * MiB :])
    assert answer.startswith("HTTP/1.1 200"), answer
    assert (Path(settings.OUTPUTS_DIR) / uploader.pk / "spooled.bin").stat().st_size == len(body)


# --- The rules, read from the site ----------------------------------------------------------------


def test_the_event_stream_is_never_buffered_and_outlives_heartbeats() -> None:
    events = nginx_location("location = /api/events/stream")
    assert events["proxy_pass"] == ["http://cloudops"]
    assert events["proxy_buffering"] == ["off"]
    assert events["gzip"] == ["off"]
    # Longer than several heartbeats (15 s by default).
    assert events["proxy_read_timeout"] == ["120s"]


def test_uploads_stream_through_unbounded_with_long_timeouts() -> None:
    storage = nginx_location("location ^~ /api/cloud/storage")
    assert storage["proxy_pass"] == ["http://cloudops"]
    assert storage["proxy_request_buffering"] == ["off"]
    assert storage["proxy_buffering"] == ["off"]
    assert storage["client_max_body_size"] == ["0"]
    for name in ("client_body_timeout", "proxy_send_timeout", "proxy_read_timeout"):
        assert int(storage[name][0].removesuffix("s")) >= 300, name


def test_the_proxy_passes_the_client_address_and_the_host_as_sent() -> None:
    [server] = [d for name, d in nginx_blocks(NGINX_SITE.read_text()) if name == "server" and "ssl_certificate" in d]
    # proxy_set_header repeats within a block (nginx_blocks keeps one): read them all.
    text = re.sub(r"#[^\n]*", "", NGINX_SITE.read_text())
    assert dict(re.findall(r"proxy_set_header\s+(\S+)\s+([^;]+);", text)) == {
        "Connection": '""',
        "Host": "$http_host",
        "X-Forwarded-For": "$proxy_add_x_forwarded_for",
        "X-Real-IP": "$remote_addr",
        "X-Forwarded-Proto": "$scheme",
    }
    assert server["proxy_http_version"] == ["1.1"]
    assert server["client_max_body_size"] == ["10m"]
