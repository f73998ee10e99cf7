"""Stock clients that copy on the server: `aws s3 cp s3://… s3://…` and `aws s3 mv` (CopyObject,
and UploadPartCopy above the CLI's 8 MiB threshold), `rclone moveto`, and `rclone sync` after
a file's modification time changed (rclone updates it with a CopyObject onto itself, REPLACE)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.storage.conftest import bucket_of, client_for, objects_on_disk
from tests.storage.test_aws_cli import AWS, _aws

MiB = 1024 * 1024


def _require(program: str) -> str:
    found = shutil.which(program) if not os.path.isabs(program) else (program if Path(program).exists() else None)
    if found is None:
        pytest.fail(f"{program} is required (.ci/run installs it)")
    return found


@pytest.mark.slow
def test_aws_s3_cp_between_keys_and_mv(endpoint, s3, writer, tmp_path: Path) -> None:
    _require(AWS)
    cred = writer()
    bucket = bucket_of(cred)
    job = (cred.access_key_id, cred.secret)
    small, big = os.urandom(1000), os.urandom(9 * MiB)  # big: a multipart copy (UploadPartCopy)
    client = client_for(s3, endpoint, cred)
    client.put_object(Bucket=bucket, Key="run/small.txt", Body=small, Metadata={"step": "3"})
    client.put_object(Bucket=bucket, Key="run/model.bin", Body=big)
    for key in ("small.txt", "model.bin"):
        done = _aws(endpoint, *job, tmp_path, "s3", "cp", f"s3://{bucket}/run/{key}", f"s3://{bucket}/copy/{key}")
        assert done.returncode == 0, done.stderr
    moved = _aws(
        endpoint, *job, tmp_path, "s3", "mv", f"s3://{bucket}/copy/model.bin", f"s3://{bucket}/final/model.bin"
    )
    assert moved.returncode == 0, moved.stderr
    assert objects_on_disk(bucket) == ["copy/small.txt", "final/model.bin", "run/model.bin", "run/small.txt"]
    root = Path(endpoint_outputs()) / bucket
    assert (root / "copy/small.txt").read_bytes() == small and (root / "final/model.bin").read_bytes() == big
    assert client.head_object(Bucket=bucket, Key="copy/small.txt")["Metadata"] == {"step": "3"}


def endpoint_outputs() -> str:
    from django.conf import settings

    return str(settings.OUTPUTS_DIR)


def _rclone(endpoint, cred, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "RCLONE_CONFIG": str(tmp_path / "no-rclone.conf"),
        "RCLONE_CONFIG_JOB_TYPE": "s3",
        "RCLONE_CONFIG_JOB_PROVIDER": "Other",
        "RCLONE_CONFIG_JOB_ACCESS_KEY_ID": cred.access_key_id,
        "RCLONE_CONFIG_JOB_SECRET_ACCESS_KEY": cred.secret,
        "RCLONE_CONFIG_JOB_ENDPOINT": endpoint.url,
        "RCLONE_CONFIG_JOB_REGION": "us-east-1",
        "RCLONE_CONFIG_JOB_FORCE_PATH_STYLE": "true",
    }
    argv = [_require("rclone"), "--retries", "1", "--low-level-retries", "1", *args]
    if endpoint.https:
        argv += ["--ca-cert", endpoint.ca]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_rclone_moveto_and_sync_after_touching_a_file(endpoint, s3, writer, tmp_path: Path) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, endpoint, cred)
    local = tmp_path / "outputs"
    local.mkdir()
    (local / "log.txt").write_text("step 1\n")
    (local / "sample.png").write_bytes(os.urandom(5000))
    first = _rclone(endpoint, cred, tmp_path, "sync", str(local), f"job:{bucket}/run")
    assert first.returncode == 0, first.stderr
    before = client.head_object(Bucket=bucket, Key="run/log.txt")["Metadata"]["mtime"]

    # Only the modification time changes, and one remote file no longer exists locally.
    os.utime(local / "log.txt", (1_700_000_000, 1_700_000_000))
    (local / "sample.png").unlink()
    again = _rclone(endpoint, cred, tmp_path, "sync", "-v", str(local), f"job:{bucket}/run")
    assert again.returncode == 0, again.stderr
    after = client.head_object(Bucket=bucket, Key="run/log.txt")["Metadata"]["mtime"]
    assert after != before and float(after) == 1_700_000_000
    assert objects_on_disk(bucket) == ["run/log.txt"]  # the deletion was not skipped

    moved = _rclone(endpoint, cred, tmp_path, "moveto", f"job:{bucket}/run/log.txt", f"job:{bucket}/archive/log.txt")
    assert moved.returncode == 0, moved.stderr
    assert objects_on_disk(bucket) == ["archive/log.txt"]
    assert client.get_object(Bucket=bucket, Key="archive/log.txt")["Body"].read() == b"step 1\n"
