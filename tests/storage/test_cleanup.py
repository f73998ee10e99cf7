"""Abandoned multipart uploads and stray temporary files are cleaned up after their TTL."""

from __future__ import annotations

import os
import time
from io import StringIO
from pathlib import Path

from django.core.management import call_command

from tests.storage.conftest import bucket_of, client_for


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_storage_cleanup_removes_only_what_is_older_than_the_ttl(http_server, s3, writer, settings) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    stale = client.create_multipart_upload(Bucket=bucket, Key="stale")["UploadId"]
    client.upload_part(Bucket=bucket, Key="stale", UploadId=stale, PartNumber=1, Body=b"x")
    fresh = client.create_multipart_upload(Bucket=bucket, Key="fresh")["UploadId"]
    client.put_object(Bucket=bucket, Key="kept.bin", Body=b"object")
    outputs = Path(settings.OUTPUTS_DIR)
    crashed = outputs / ".s3-tmp" / "put-crashed"
    crashed.write_bytes(b"partial")
    _age(outputs / ".s3-uploads" / stale, 2 * 86400)
    _age(crashed, 2 * 86400)

    out = StringIO()
    call_command("storage_cleanup", stdout=out)
    assert out.getvalue().strip() == "Removed 1 abandoned multipart upload(s) and 1 temporary file(s)."
    assert not (outputs / ".s3-uploads" / stale).exists()
    assert (outputs / ".s3-uploads" / fresh).exists()
    assert not crashed.exists()
    assert (outputs / bucket / "kept.bin").read_bytes() == b"object"
    import botocore.exceptions
    import pytest

    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.list_parts(Bucket=bucket, Key="stale", UploadId=stale)
    assert caught.value.response["Error"]["Code"] == "NoSuchUpload"
    again = StringIO()
    call_command("storage_cleanup", stdout=again)
    assert again.getvalue().strip() == "Removed 0 abandoned multipart upload(s) and 0 temporary file(s)."
