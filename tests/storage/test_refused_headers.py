"""Write headers the endpoint cannot honour are refused, never dropped (issue 17 item 6):
server-side encryption, tagging, public ACLs and grants; `private` ACLs are accepted. boto3
against the live server, over HTTP and HTTPS (where SSE-C can be sent at all)."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest

from storage.credentials import Credential
from tests.storage.conftest import Endpoint, client_for, objects_on_disk


def _error(call: Callable[[], object]) -> tuple[int, str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        call()
    error = raised.value.response
    return error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"], error["Error"]["Message"]


@pytest.fixture
def client(s3: Callable[..., Any], endpoint: Endpoint, writer: Callable[[], Credential]) -> Any:
    return client_for(s3, endpoint, writer())


def _bucket(client: Any) -> str:
    return client.list_buckets()["Buckets"][0]["Name"]


@pytest.mark.parametrize(
    "extra",
    [
        {"ServerSideEncryption": "AES256"},
        {"ServerSideEncryption": "aws:kms"},
        {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/trainer"},
        {"ServerSideEncryption": "aws:kms:dsse"},
    ],
    ids=["aes256", "kms", "kms-key", "dsse"],
)
def test_server_side_encryption_is_not_implemented_and_nothing_is_written(client: Any, extra: dict[str, str]) -> None:
    bucket = _bucket(client)
    status, code, message = _error(lambda: client.put_object(Bucket=bucket, Key="model.bin", Body=b"w", **extra))
    assert (status, code) == (501, "NotImplemented")
    assert "Server-side encryption is not implemented" in message
    assert "x-amz-server-side-encryption" in message
    status, code, _ = _error(lambda: client.create_multipart_upload(Bucket=bucket, Key="model.bin", **extra))
    assert (status, code) == (501, "NotImplemented")
    assert objects_on_disk(bucket) == []


def test_customer_provided_keys_are_not_implemented(s3: Callable[..., Any], https_server: Endpoint, writer) -> None:  # type: ignore[no-untyped-def]
    client = client_for(s3, https_server, writer())
    bucket = _bucket(client)
    key = os.urandom(32)
    sse_c = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}
    status, code, message = _error(lambda: client.put_object(Bucket=bucket, Key="k", Body=b"w", **sse_c))
    assert (status, code) == (501, "NotImplemented")
    assert "x-amz-server-side-encryption-customer-" in message
    assert base64.b64encode(hashlib.md5(key).digest()).decode() not in message
    assert _error(lambda: client.create_multipart_upload(Bucket=bucket, Key="k", **sse_c))[:2] == (
        501,
        "NotImplemented",
    )
    assert objects_on_disk(bucket) == []


def test_tagging_is_refused_on_write_as_on_read(client: Any) -> None:
    bucket = _bucket(client)
    status, code, message = _error(lambda: client.put_object(Bucket=bucket, Key="k", Body=b"w", Tagging="run=7"))
    assert (status, code) == (501, "NotImplemented")
    assert "x-amz-tagging" in message
    assert _error(lambda: client.create_multipart_upload(Bucket=bucket, Key="k", Tagging="run=7"))[:2] == (
        501,
        "NotImplemented",
    )
    assert objects_on_disk(bucket) == []
    client.put_object(Bucket=bucket, Key="k", Body=b"w")
    assert _error(lambda: client.get_object_tagging(Bucket=bucket, Key="k"))[:2] == (501, "NotImplemented")
    tags = {"TagSet": [{"Key": "run", "Value": "7"}]}
    assert _error(lambda: client.put_object_tagging(Bucket=bucket, Key="k", Tagging=tags))[:2] == (
        501,
        "NotImplemented",
    )


@pytest.mark.parametrize("acl", ["private", "bucket-owner-full-control"])
def test_private_acls_are_accepted_and_change_nothing(client: Any, acl: str, tmp_path: Path) -> None:
    bucket = _bucket(client)
    client.put_object(Bucket=bucket, Key="single", Body=b"w", ACL=acl)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(6 * 1024 * 1024))
    config = boto3.s3.transfer.TransferConfig(multipart_threshold=5 * 1024**2, multipart_chunksize=5 * 1024**2)
    client.upload_file(str(source), bucket, "multi", ExtraArgs={"ACL": acl}, Config=config)
    assert objects_on_disk(bucket) == ["multi", "single"]
    assert client.get_object(Bucket=bucket, Key="multi")["Body"].read() == source.read_bytes()


@pytest.mark.parametrize("acl", ["public-read", "public-read-write", "authenticated-read"])
def test_public_acls_are_denied(client: Any, acl: str) -> None:
    bucket = _bucket(client)
    status, code, message = _error(lambda: client.put_object(Bucket=bucket, Key="k", Body=b"w", ACL=acl))
    assert (status, code) == (403, "AccessDenied")
    assert "always private" in message and acl in message
    assert _error(lambda: client.create_multipart_upload(Bucket=bucket, Key="k", ACL=acl))[:2] == (403, "AccessDenied")
    assert objects_on_disk(bucket) == []


def test_other_acls_and_grants_are_refused(client: Any) -> None:
    bucket = _bucket(client)
    status, code, message = _error(lambda: client.put_object(Bucket=bucket, Key="k", Body=b"w", ACL="aws-exec-read"))
    assert (status, code) == (400, "InvalidArgument")
    assert "x-amz-acl" in message
    grant = {"GrantRead": 'id="someone-else"'}
    status, code, message = _error(lambda: client.put_object(Bucket=bucket, Key="k", Body=b"w", **grant))
    assert (status, code) == (501, "NotImplemented")
    assert "x-amz-grant-read" in message
    assert _error(lambda: client.put_object_acl(Bucket=bucket, Key="k", ACL="private"))[:2] == (501, "NotImplemented")
    assert objects_on_disk(bucket) == []


def test_object_lock_headers_are_refused(client: Any) -> None:
    bucket = _bucket(client)
    status, code, message = _error(
        lambda: client.put_object(Bucket=bucket, Key="k", Body=b"w", ObjectLockLegalHoldStatus="ON")
    )
    assert (status, code) == (501, "NotImplemented")
    assert "Object Lock" in message
    assert objects_on_disk(bucket) == []
