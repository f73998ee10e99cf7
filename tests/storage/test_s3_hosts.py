"""S3 at the root of a host name (SIMPLETUNER_S3_HOSTS): s3cmd and boto3 against a live server.

The test server listens on 127.0.0.1; `localhost` resolves there, so it plays the S3 host while
`127.0.0.1` stays the API's host. s3cmd is the client that needs this (it cannot sign for an
endpoint with a path): each of its commands is run for real and must exit 0.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config

from audit.models import AuditEntry
from storage.credentials import Credential
from tests.storage.conftest import Endpoint, bucket_of, objects_on_disk
from tests.storage.test_health_and_settings import _settings_error

S3_HOST = "localhost"


@pytest.fixture
def s3_host(settings, http_server: Endpoint) -> str:  # type: ignore[no-untyped-def]
    """The live server's URL through the S3 host (its root is the S3 endpoint)."""
    settings.SIMPLETUNER_S3_HOSTS = frozenset({S3_HOST})
    return http_server.base.replace("127.0.0.1", S3_HOST)


def root_client(url: str, credential: Credential) -> object:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=credential.access_key_id,
        aws_secret_access_key=credential.secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


# --- the setting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["s3.example.com:9000", "https://s3.example.com", "*.example.com", "s3_.example.com"])
def test_a_bad_host_name_stops_start_up_naming_the_variable(value: str) -> None:
    message = _settings_error(SIMPLETUNER_S3_HOSTS=f"ok.example.com,{value}")
    assert "SIMPLETUNER_S3_HOSTS" in message and "is not a host name" in message


def test_the_public_url_host_cannot_be_an_s3_host() -> None:
    message = _settings_error(SIMPLETUNER_PUBLIC_URL="https://st.example.com", SIMPLETUNER_S3_HOSTS="ST.example.com")
    assert "SIMPLETUNER_S3_HOSTS" in message and "SIMPLETUNER_PUBLIC_URL" in message


# --- boto3 ---------------------------------------------------------------------------------------


def test_boto3_at_the_host_root_puts_gets_lists_and_uploads_multipart(
    s3_host: str, writer: Callable[[], Credential], tmp_path: Path
) -> None:
    credential = writer()
    bucket = bucket_of(credential)
    client = root_client(s3_host, credential)
    # Over SIMPLETUNER_MAX_REQUEST_BYTES (1 MiB): only the storage mount's streaming body takes it.
    big = bytes(range(256)) * (3 * 4096)
    client.put_object(Bucket=bucket, Key="checkpoints/a b+c.bin", Body=big)  # type: ignore[attr-defined]
    assert client.get_object(Bucket=bucket, Key="checkpoints/a b+c.bin")["Body"].read() == big  # type: ignore[attr-defined]
    source = tmp_path / "multi.bin"
    source.write_bytes(big * 3)
    config = boto3.s3.transfer.TransferConfig(multipart_threshold=5 * 1024**2, multipart_chunksize=5 * 1024**2)
    client.upload_file(str(source), bucket, "multi.bin", Config=config)  # type: ignore[attr-defined]
    listed = client.list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    assert [item["Key"] for item in listed["Contents"]] == ["checkpoints/a b+c.bin", "multi.bin"]
    assert [b["Name"] for b in client.list_buckets()["Buckets"]] == [bucket]  # type: ignore[attr-defined]
    assert objects_on_disk(bucket) == ["checkpoints/a b+c.bin", "multi.bin"]
    # Audited as any upload through /api/cloud/storage.
    assert AuditEntry.objects.filter(event_type="storage.upload", target_id=bucket).count() == 2


def test_a_presigned_url_for_the_host_root_works_and_a_wrong_secret_does_not(
    s3_host: str, writer: Callable[[], Credential]
) -> None:
    credential = writer()
    bucket = bucket_of(credential)
    client = root_client(s3_host, credential)
    client.put_object(Bucket=bucket, Key="k", Body=b"hello")  # type: ignore[attr-defined]
    url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})  # type: ignore[attr-defined]
    assert httpx.get(url).content == b"hello"
    forged = Credential(**{**credential.__dict__, "secret": "wrong"})
    refused = httpx.get(
        root_client(s3_host, forged).generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    )  # type: ignore[attr-defined]
    assert refused.status_code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in refused.content


def test_the_s3_host_serves_only_s3(s3_host: str, http_server: Endpoint) -> None:
    # The API's own host answers as before...
    assert httpx.get(f"{http_server.base}/api/cloud/health/live").status_code == 200
    # ...while on the S3 host every path is an S3 path: anonymous, so AccessDenied in S3 XML.
    for path in ("/api/cloud/health/live", "/admin/login/", "/api/auth/login", "/static/x.css", "/"):
        response = httpx.get(s3_host + path)
        assert response.status_code == 403, path
        assert response.headers["content-type"] == "application/xml", path
        assert b"<Code>AccessDenied</Code>" in response.content, path
    # The storage rate limit applies there as on the mount (loopback itself is never limited:
    # the test plays a remote client through the trusted loopback proxy).
    remote = httpx.get(s3_host + "/some-bucket/key", headers={"X-Forwarded-For": "203.0.113.41"})
    assert remote.headers["X-RateLimit-Limit"] == "50"


def test_the_host_matches_without_port_and_case(s3_host: str, http_server: Endpoint) -> None:
    response = httpx.get(f"{http_server.base}/", headers={"Host": "LocalHost.:1"})
    assert response.status_code == 403
    assert b"<Code>AccessDenied</Code>" in response.content


def test_without_the_setting_the_host_is_the_api_host(settings, http_server: Endpoint) -> None:  # type: ignore[no-untyped-def]
    settings.SIMPLETUNER_S3_HOSTS = frozenset()
    response = httpx.get(http_server.base.replace("127.0.0.1", S3_HOST) + "/api/cloud/health/live")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")


# --- s3cmd -------------------------------------------------------------------------------------------


@pytest.fixture
def s3cmd(s3_host: str, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run s3cmd with a configuration for the S3 host, path-style (host_bucket without %(bucket)s)."""
    executable = shutil.which("s3cmd")
    if executable is None:
        pytest.fail("s3cmd is not installed (Debian package s3cmd; .ci/run installs it)")
    hostport = s3_host.removeprefix("http://")

    def run(credential: Credential, *args: str) -> subprocess.CompletedProcess[str]:
        config = tmp_path / "s3cfg"
        config.write_text(
            "[default]\n"
            f"access_key = {credential.access_key_id}\n"
            f"secret_key = {credential.secret}\n"
            f"host_base = {hostport}\n"
            f"host_bucket = {hostport}\n"
            "use_https = False\n"
            "signature_v2 = False\n"
            "bucket_location = us-east-1\n"
        )
        done = subprocess.run(
            [executable, "--config", str(config), "--no-progress", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"s3cmd {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        return done

    return run


def test_s3cmd_put_and_get(s3cmd: Callable[..., object], writer: Callable[[], Credential], tmp_path: Path) -> None:
    credential = writer()
    bucket = bucket_of(credential)
    source = tmp_path / "model.safetensors"
    source.write_bytes(b"weights" * 300_000)  # 2.1 MB: over the 1 MiB bound of non-S3 bodies
    s3cmd(credential, "put", str(source), f"s3://{bucket}/checkpoints/model.safetensors")
    assert objects_on_disk(bucket) == ["checkpoints/model.safetensors"]
    target = tmp_path / "back.safetensors"
    s3cmd(credential, "get", f"s3://{bucket}/checkpoints/model.safetensors", str(target))
    assert target.read_bytes() == source.read_bytes()


def test_s3cmd_ls(
    s3cmd: Callable[..., subprocess.CompletedProcess[str]], writer: Callable[[], Credential], s3_host: str
) -> None:
    credential = writer()
    bucket = bucket_of(credential)
    root_client(s3_host, credential).put_object(Bucket=bucket, Key="samples/0.png", Body=b"png")  # type: ignore[attr-defined]
    assert f"s3://{bucket}" in s3cmd(credential, "ls").stdout
    listed = s3cmd(credential, "ls", "--recursive", f"s3://{bucket}/").stdout
    assert f"s3://{bucket}/samples/0.png" in listed


def test_s3cmd_sync_both_ways(
    s3cmd: Callable[..., subprocess.CompletedProcess[str]], writer: Callable[[], Credential], tmp_path: Path
) -> None:
    credential = writer()
    bucket = bucket_of(credential)
    local = tmp_path / "outputs"
    (local / "samples").mkdir(parents=True)
    (local / "samples" / "0.png").write_bytes(b"zero")
    (local / "log.txt").write_text("step 1\n")
    s3cmd(credential, "sync", f"{local}/", f"s3://{bucket}/run/")
    assert objects_on_disk(bucket) == ["run/log.txt", "run/samples/0.png"]
    (local / "log.txt").write_text("step 1\nstep 2\n")
    s3cmd(credential, "sync", f"{local}/", f"s3://{bucket}/run/")
    back = tmp_path / "back"
    s3cmd(credential, "sync", f"s3://{bucket}/run/", f"{back}/")
    assert (back / "log.txt").read_text() == "step 1\nstep 2\n"
    assert (back / "samples" / "0.png").read_bytes() == b"zero"


def test_s3cmd_with_a_wrong_secret_fails(s3_host: str, writer: Callable[[], Credential], tmp_path: Path) -> None:
    """The s3cmd tests can fail: the same command with a wrong secret exits non-zero."""
    credential = writer()
    hostport = s3_host.removeprefix("http://")
    config = tmp_path / "s3cfg"
    config.write_text(
        f"[default]\naccess_key = {credential.access_key_id}\nsecret_key = wrong\nhost_base = {hostport}\n"
        f"host_bucket = {hostport}\nuse_https = False\nsignature_v2 = False\n"
    )
    done = subprocess.run(
        ["s3cmd", "--config", str(config), "ls", f"s3://{bucket_of(credential)}/"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "SignatureDoesNotMatch" in done.stderr + done.stdout
