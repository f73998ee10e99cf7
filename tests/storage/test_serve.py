"""The production entry point, `manage.py serve`: uvicorn over HTTPS, and daphne still working."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config

from cloudops.apikeys import api_key_create
from tests.processes import django_env
from tests.server.live import free_port, running, running_process
from tests.storage.conftest import bucket_of

MiB = 1024 * 1024


def _client(base: str, key_id: str, secret: str, ca: str | None = None):  # type: ignore[no-untyped-def]
    return boto3.session.Session().client(
        "s3",
        endpoint_url=base + "/api/cloud/storage",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        verify=ca,
        config=Config(retries={"max_attempts": 1}),
    )


def _serve(tmp_path: Path, cred, **extra: str):  # type: ignore[no-untyped-def]
    port = free_port()
    env = django_env(
        PORT=str(port),
        HOST="127.0.0.1",
        **extra,
    )
    return port, env


def _roundtrip(client, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "upload.bin"
    source.write_bytes(os.urandom(10 * MiB))  # multipart with boto3's defaults
    client.upload_file(str(source), bucket, "ckpt/model.bin")
    client.put_object(Bucket=bucket, Key="small.txt", Body=b"hello")
    target = tmp_path / "download.bin"
    client.download_file(bucket, "ckpt/model.bin", str(target))
    assert target.read_bytes() == source.read_bytes()
    assert client.get_object(Bucket=bucket, Key="small.txt")["Body"].read() == b"hello"


@pytest.mark.slow
def test_serve_speaks_https_with_the_configured_certificate(tmp_path, writer, olivia, tls_files) -> None:
    cert, key, ca = tls_files
    cred = writer()
    port, env = _serve(tmp_path, cred, SIMPLETUNER_SSL_CERT=str(cert), SIMPLETUNER_SSL_KEY=str(key))
    log = tmp_path / "serve.log"
    with running_process([sys.executable, "manage.py", "serve"], env, port, log, ca=ca) as (base, proc):
        _roundtrip(_client(base, cred.access_key_id, cred.secret, str(ca)), bucket_of(cred), tmp_path)
        api_key, raw = api_key_create(owner=olivia, name="ops")
        staff = _client(base, api_key.prefix, raw, str(ca))
        assert [b["Name"] for b in staff.list_buckets()["Buckets"]] == [bucket_of(cred)]
        # Plain HTTP on the TLS port gets no answer from the application.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/api/cloud/health/live", timeout=5)
        # It stops on SIGTERM (what systemd and Kubernetes send) without needing a SIGKILL.
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    output = log.read_text()
    assert f"https://127.0.0.1:{port}/" in output and "server: uvicorn" in output


@pytest.mark.slow
def test_daphne_still_serves_the_storage_endpoint(tmp_path, writer) -> None:
    cred = writer()
    port, env = _serve(tmp_path, cred, SIMPLETUNER_SERVER="daphne")
    with running([sys.executable, "manage.py", "serve"], env, port, tmp_path / "daphne.log") as base:
        _roundtrip(_client(base, cred.access_key_id, cred.secret), bucket_of(cred), tmp_path)
    assert "server: daphne" in (tmp_path / "daphne.log").read_text()
