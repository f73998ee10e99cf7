"""CompleteMultipartUpload is safe to retry and recoverable (issue 12 finding 13, issue 13 finding 5).

A Complete refused at its last step leaves the upload completable and abortable; a retry that
reaches another process while the first assembles waits and answers the same object; a server
killed mid-Complete leaves an upload that the next Complete finishes, with no partial object
and nothing left behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from io import StringIO
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import httpx
import pytest
from botocore.config import Config
from django.conf import settings as django_settings
from django.core.management import call_command

from audit.models import AuditEntry
from providers.models import Job
from storage import keepalive, multipart, store
from storage.credentials import Credential
from tests.processes import django_env, spawn_django
from tests.storage.conftest import Endpoint, bucket_of, client_for, objects_on_disk, temp_files
from tests.storage.raw import signed_headers

MiB = 1024 * 1024
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
FIRST, SECOND = b"a" * (5 * MiB), b"b" * 1024


@pytest.fixture(autouse=True)
def _copying_assembly(monkeypatch) -> None:
    """Parts go to files of their own, so a Complete copies them (the crashes below happen
    mid-copy); parts kept in place, renamed into the object, are tests/storage/test_parts_in_place.py's."""
    monkeypatch.setattr(multipart, "IN_PLACE", False)


def _outputs() -> Path:
    return Path(django_settings.OUTPUTS_DIR)


def _start(client: Any, bucket: str, key: str) -> tuple[str, list[dict[str, Any]]]:
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = [
        {
            "PartNumber": n,
            "ETag": client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=b)["ETag"],
        }
        for n, b in ((1, FIRST), (2, SECOND))
    ]
    return upload_id, parts


def _expected_etag() -> str:
    md5s = hashlib.md5(FIRST).digest() + hashlib.md5(SECOND).digest()
    return f'"{hashlib.md5(md5s).hexdigest()}-2"'


def _complete(client: Any, bucket: str, key: str, upload_id: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    return client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )


def _error(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


def _upload_dirs() -> list[Path]:
    uploads = _outputs() / ".s3-uploads"
    return [p for p in uploads.iterdir() if p.is_dir()] if uploads.exists() else []


# --- (a) a Complete refused at the last step -----------------------------------------------------


def test_a_complete_refused_because_the_key_is_a_folder_leaves_the_upload_completable(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, parts = _start(client, bucket, "ckpt")
    client.put_object(Bucket=bucket, Key="ckpt/inner", Body=b"a folder named like the key")
    for _ in range(2):  # a retry gets the same refusal, not NoSuchUpload
        assert _error(_complete, client=client, bucket=bucket, key="ckpt", upload_id=upload_id, parts=parts) == (
            "InvalidArgument",
            400,
        )
    assert [p["Size"] for p in client.list_parts(Bucket=bucket, Key="ckpt", UploadId=upload_id)["Parts"]] == [
        5 * MiB,
        1024,
    ]
    client.delete_object(Bucket=bucket, Key="ckpt/inner")
    assert _complete(client, bucket, "ckpt", upload_id, parts)["ETag"] == _expected_etag()
    assert client.get_object(Bucket=bucket, Key="ckpt")["Body"].read() == FIRST + SECOND
    assert _upload_dirs() == [] and temp_files() == []


def test_a_complete_refused_because_the_key_is_a_folder_leaves_the_upload_abortable(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, parts = _start(client, bucket, "ckpt")
    client.put_object(Bucket=bucket, Key="ckpt/inner", Body=b"x")
    assert _error(_complete, client=client, bucket=bucket, key="ckpt", upload_id=upload_id, parts=parts)[0] == (
        "InvalidArgument"
    )
    client.abort_multipart_upload(Bucket=bucket, Key="ckpt", UploadId=upload_id)
    assert _error(client.list_parts, Bucket=bucket, Key="ckpt", UploadId=upload_id) == ("NoSuchUpload", 404)
    assert objects_on_disk(bucket) == ["ckpt/inner"]
    assert _upload_dirs() == [] and temp_files() == []


def test_a_folder_appearing_while_complete_assembles_is_a_retried_error_and_the_upload_survives(
    http_server, writer, monkeypatch
) -> None:
    """The checks made before answering pass, then the key becomes a folder before the
    rename: the 200 already sent carries an Error, which botocore retries."""
    cred = writer()
    bucket = bucket_of(cred)
    client = _retrying_client(http_server, cred, attempts=2)
    attempts: list[str] = []
    client.meta.events.register("before-send.s3.CompleteMultipartUpload", lambda **_: attempts.append("sent"))
    upload_id, parts = _start(client, bucket, "ckpt")
    client.put_object(Bucket=bucket, Key="ckpt/inner", Body=b"x")
    # The race, forced: the folder check is blind, so only the final rename meets the folder.
    monkeypatch.setattr(store, "check_key_free", lambda root, bucket, key: None)
    code, status = _error(_complete, client=client, bucket=bucket, key="ckpt", upload_id=upload_id, parts=parts)
    assert (code, status, len(attempts)) == ("InvalidArgument", 500, 2)
    assert len(client.list_parts(Bucket=bucket, Key="ckpt", UploadId=upload_id)["Parts"]) == 2
    assert temp_files() == []
    client.delete_object(Bucket=bucket, Key="ckpt/inner")
    assert _complete(client, bucket, "ckpt", upload_id, parts)["ETag"] == _expected_etag()


def _retrying_client(endpoint: Endpoint, cred: Credential, *, attempts: int) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint.url,
        aws_access_key_id=cred.access_key_id,
        aws_secret_access_key=cred.secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": attempts, "mode": "standard"}),
    )


# --- (b), (c) another server process, paused or killed in the middle of a Complete -----------------

# A second server on the same database and outputs, whose assembly stops after the first part
# until the test creates `go` (or kills it).
PAUSED_SERVER = """
import os, time
from pathlib import Path
from storage import completion, multipart
from tests.storage.server import serving

signals = Path(os.environ["SIGNALS"])
real_append = completion._append

def paused_append(out_fd, path, size):
    real_append(out_fd, path, size)
    (signals / "assembling").touch()
    while not (signals / "go").exists():
        time.sleep(0.02)

completion._append = paused_append
multipart.IN_PLACE = False
with serving() as base:
    # Written whole, then renamed: the test waits for the name and reads it at once.
    (signals / "url.tmp").write_text(base)
    (signals / "url.tmp").rename(signals / "url")
    while not (signals / "stop").exists():
        time.sleep(0.05)
"""


def _paused_server(signals: Path) -> subprocess.Popen[str]:
    return spawn_django(PAUSED_SERVER, env=django_env(SIGNALS=str(signals), SIMPLETUNER_S3_MIN_FREE_BYTES="0"))


def _wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the second server exited:\n{proc.communicate()[1]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} never appeared")
        time.sleep(0.02)


def _in_thread(call: Any, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call(**kwargs)
        except Exception as exc:  # the connection dies with the killed server
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _complete_body(parts: list[dict[str, Any]]) -> bytes:
    listed = "".join(f"<Part><PartNumber>{p['PartNumber']}</PartNumber><ETag>{p['ETag']}</ETag></Part>" for p in parts)
    return f"<CompleteMultipartUpload>{listed}</CompleteMultipartUpload>".encode()


@pytest.mark.slow
def test_a_retry_reaching_another_process_while_the_first_assembles_waits_and_gets_the_same_object(
    http_server, s3, writer, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(keepalive, "KEEPALIVE_SECONDS", 0.05)
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, parts = _start(client, bucket, "model.safetensors")
    proc = _paused_server(tmp_path)
    try:
        _wait_for(tmp_path / "url", proc)
        other = s3(Endpoint((tmp_path / "url").read_text(), None), cred.access_key_id, cred.secret)
        first, outcome = _in_thread(
            _complete, client=other, bucket=bucket, key="model.safetensors", upload_id=upload_id, parts=parts
        )
        _wait_for(tmp_path / "assembling", proc)
        # The client's retry reaches this process while the other one holds the upload.
        url = f"{http_server.url}/{bucket}/model.safetensors?uploadId={upload_id}"
        body = _complete_body(parts)
        headers = signed_headers("POST", url, cred, "UNSIGNED-PAYLOAD", {"Content-Length": str(len(body))})
        with httpx.stream("POST", url, content=body, headers=headers, timeout=60) as retry:
            assert retry.status_code == 200
            chunks = retry.iter_bytes()
            received = next(chunks)
            assert received.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
            # Answered at once, then kept alive with whitespace while the other process works.
            while not received.endswith(b" "):
                received += next(chunks)
            assert not (tmp_path / "go").exists() and first.is_alive()
            (tmp_path / "go").touch()
            received += b"".join(chunks)
        first.join(60)
        assert outcome["result"]["ETag"] == _expected_etag()
        answer = ET.fromstring(received)
        assert answer.tag == f"{NS}CompleteMultipartUploadResult"
        assert answer.findtext(f"{NS}ETag") == _expected_etag()
    finally:
        (tmp_path / "stop").touch()
        (tmp_path / "go").touch()
        proc.communicate(timeout=60)
    assert client.get_object(Bucket=bucket, Key="model.safetensors")["Body"].read() == FIRST + SECOND
    # Recorded once, by the process that assembled it.
    assert Job.objects.get(id=bucket).upload_objects == 1
    assert AuditEntry.objects.filter(event_type="storage.upload").count() == 1
    # A later retry, anywhere, still gets the same answer.
    assert _complete(client, bucket, "model.safetensors", upload_id, parts)["ETag"] == _expected_etag()
    assert _upload_dirs() == [] and temp_files() == []


@pytest.mark.slow
def test_a_server_killed_mid_complete_leaves_an_upload_the_next_complete_finishes(
    http_server, s3, writer, tmp_path
) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, parts = _start(client, bucket, "model.safetensors")
    proc = _paused_server(tmp_path)
    try:
        _wait_for(tmp_path / "url", proc)
        other = s3(Endpoint((tmp_path / "url").read_text(), None), cred.access_key_id, cred.secret)
        first, outcome = _in_thread(
            _complete, client=other, bucket=bucket, key="model.safetensors", upload_id=upload_id, parts=parts
        )
        _wait_for(tmp_path / "assembling", proc)
        proc.kill()  # SIGKILL: no cleanup of any kind runs
    finally:
        proc.communicate(timeout=60)
    first.join(60)
    assert "error" in outcome
    # The upload is still there, whole, and the object is not.
    listed = client.list_parts(Bucket=bucket, Key="model.safetensors", UploadId=upload_id)["Parts"]
    assert [p["Size"] for p in listed] == [5 * MiB, 1024]
    assert _error(client.head_object, Bucket=bucket, Key="model.safetensors") == ("404", 404)
    leftovers = temp_files()
    assert [p.name for p in leftovers] == [f"complete-{upload_id}"] and leftovers[0].stat().st_size == 5 * MiB
    # The client's retry, on this process, finishes it and reclaims the killed attempt's file.
    assert _complete(client, bucket, "model.safetensors", upload_id, parts)["ETag"] == _expected_etag()
    assert client.get_object(Bucket=bucket, Key="model.safetensors")["Body"].read() == FIRST + SECOND
    assert Job.objects.get(id=bucket).upload_objects == 1
    assert _upload_dirs() == [] and temp_files() == []
    assert _error(client.list_parts, Bucket=bucket, Key="model.safetensors", UploadId=upload_id) == (
        "NoSuchUpload",
        404,
    )
    call_command("storage_cleanup", older_than=0, stdout=StringIO())
    assert list((_outputs() / ".s3-uploads").iterdir()) == []


# --- What a crash leaves is reclaimed ------------------------------------------------------------


def test_abort_removes_what_a_crashed_complete_left(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, _ = _start(client, bucket, "k")
    crashed = _outputs() / ".s3-tmp" / f"complete-{upload_id}"
    crashed.write_bytes(FIRST)  # what a Complete killed after its first part leaves
    client.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id)
    assert not crashed.exists() and _upload_dirs() == []


def test_a_crash_after_the_done_marker_leaves_a_completed_upload_and_cleanup_takes_the_rest(
    http_server, s3, writer
) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, parts = _start(client, bucket, "k")
    folder = _outputs() / ".s3-uploads" / upload_id
    description = (folder / "upload.json").read_bytes()
    assert _complete(client, bucket, "k", upload_id, parts)["ETag"] == _expected_etag()
    # What a Complete killed between writing `.done` and removing the folder leaves.
    folder.mkdir()
    (folder / "upload.json").write_bytes(description)
    (folder / "00001").write_bytes(FIRST)
    assert _error(client.list_parts, Bucket=bucket, Key="k", UploadId=upload_id) == ("NoSuchUpload", 404)
    assert _error(client.upload_part, Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=3, Body=b"late") == (
        "NoSuchUpload",
        404,
    )
    assert _complete(client, bucket, "k", upload_id, parts)["ETag"] == _expected_etag()
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == FIRST + SECOND
    call_command("storage_cleanup", older_than=0, stdout=StringIO())
    assert not folder.exists() and temp_files() == []


def test_cleanup_skips_an_upload_whose_complete_holds_the_lock(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    upload_id, _ = _start(client, bucket, "k")
    folder = _outputs() / ".s3-uploads" / upload_id
    fd = os.open(folder / "upload.json", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a Complete in another process holds it
        call_command("storage_cleanup", older_than=0, stdout=StringIO())
        assert folder.exists()
    finally:
        os.close(fd)
    call_command("storage_cleanup", older_than=0, stdout=StringIO())
    assert not folder.exists()
