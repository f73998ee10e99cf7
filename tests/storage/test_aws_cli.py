"""The real AWS CLI (`pip install awscli`) against the endpoint: cp up and down, ls, sync."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloudops.apikeys import api_key_create
from tests.storage.conftest import bucket_of, objects_on_disk

AWS = str(Path(sys.executable).with_name("aws"))
MiB = 1024 * 1024


def _aws(endpoint, key_id: str, secret: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
    }
    argv = [AWS, "--endpoint-url", endpoint.url, *args]
    if endpoint.https:
        argv += ["--ca-bundle", endpoint.ca]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_aws_s3_cp_up_and_down_ls_and_sync(endpoint, writer, olivia, tmp_path: Path) -> None:
    if not Path(AWS).exists():
        pytest.fail("the AWS CLI is required (requirements-dev.txt installs awscli)")
    cred = writer()
    bucket = bucket_of(cred)
    job = (cred.access_key_id, cred.secret)
    big = tmp_path / "model.safetensors"
    big.write_bytes(os.urandom(9 * MiB))  # above the CLI's 8 MiB threshold: multipart
    done = _aws(endpoint, *job, tmp_path, "s3", "cp", str(big), f"s3://{bucket}/checkpoints/model.safetensors")
    assert done.returncode == 0, done.stderr
    outputs = tmp_path / "outputs"
    (outputs / "samples").mkdir(parents=True)
    for i in range(3):
        (outputs / "samples" / f"{i}.png").write_bytes(os.urandom(1000 + i))
    (outputs / "train.log").write_text("step 1\n")
    synced = _aws(endpoint, *job, tmp_path, "s3", "sync", str(outputs), f"s3://{bucket}/run")
    assert synced.returncode == 0, synced.stderr
    assert objects_on_disk(bucket) == [
        "checkpoints/model.safetensors",
        "run/samples/0.png",
        "run/samples/1.png",
        "run/samples/2.png",
        "run/train.log",
    ]
    again = _aws(endpoint, *job, tmp_path, "s3", "sync", str(outputs), f"s3://{bucket}/run")
    assert again.returncode == 0 and again.stdout.strip() == ""  # nothing changed, nothing sent

    # The operator downloads with a staff API key.
    api_key, raw_key = api_key_create(owner=olivia, name="laptop")
    staff = (api_key.prefix, raw_key)
    listed = _aws(endpoint, *staff, tmp_path, "s3", "ls")
    assert listed.returncode == 0, listed.stderr
    assert bucket in listed.stdout
    recursive = _aws(endpoint, *staff, tmp_path, "s3", "ls", "--recursive", f"s3://{bucket}/")
    assert recursive.returncode == 0, recursive.stderr
    assert "run/samples/2.png" in recursive.stdout and str(9 * MiB) in recursive.stdout
    down = tmp_path / "down.safetensors"
    got = _aws(endpoint, *staff, tmp_path, "s3", "cp", f"s3://{bucket}/checkpoints/model.safetensors", str(down))
    assert got.returncode == 0, got.stderr
    assert down.read_bytes() == big.read_bytes()
    mirror = tmp_path / "mirror"
    pulled = _aws(endpoint, *staff, tmp_path, "s3", "sync", f"s3://{bucket}/run", str(mirror))
    assert pulled.returncode == 0, pulled.stderr
    assert sorted(str(p.relative_to(mirror)) for p in mirror.rglob("*") if p.is_file()) == [
        "samples/0.png",
        "samples/1.png",
        "samples/2.png",
        "train.log",
    ]
    refused = _aws(endpoint, *staff, tmp_path, "s3", "cp", str(big), f"s3://{bucket}/staff-upload")
    assert refused.returncode != 0 and "AccessDenied" in refused.stderr
