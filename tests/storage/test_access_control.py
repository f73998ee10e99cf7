"""Who may do what: signatures, credential scope, job grace period, staff API keys, clock skew."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import boto3
import botocore.exceptions
import httpx
import pytest
from botocore.config import Config
from django.utils import timezone

from cloudops.apikeys import api_key_create, api_key_revoke, api_key_secret
from providers.credentials import job_upload_bearer
from storage import clock
from tests.conftest import grant
from tests.storage.conftest import bucket_of, client_for, expire, objects_on_disk


def _code(call, *args, **kwargs) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(*args, **kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_a_wrong_secret_is_signature_does_not_match(endpoint, s3, writer) -> None:
    cred = writer()
    client = s3(endpoint, cred.access_key_id, "not-the-secret")
    assert _code(client.put_object, Bucket=bucket_of(cred), Key="k", Body=b"x") == ("SignatureDoesNotMatch", 403)
    assert objects_on_disk(bucket_of(cred)) == []


def test_an_unknown_key_id_is_invalid_access_key_id(endpoint, s3) -> None:
    client = s3(endpoint, "AKIANOBODY", "secret")
    assert _code(client.list_objects_v2, Bucket="any") == ("InvalidAccessKeyId", 403)


def test_a_job_cannot_touch_another_jobs_bucket(endpoint, s3, writer) -> None:
    mine, theirs = writer(), writer()
    client_for(s3, endpoint, theirs).put_object(Bucket=bucket_of(theirs), Key="secret.txt", Body=b"x")
    client = client_for(s3, endpoint, mine)
    other = bucket_of(theirs)
    assert _code(client.put_object, Bucket=other, Key="k", Body=b"x") == ("AccessDenied", 403)
    assert _code(client.get_object, Bucket=other, Key="secret.txt") == ("AccessDenied", 403)
    assert _code(client.list_objects_v2, Bucket=other) == ("AccessDenied", 403)
    assert _code(client.delete_object, Bucket=other, Key="secret.txt") == ("AccessDenied", 403)
    assert _code(client.create_multipart_upload, Bucket=other, Key="k") == ("AccessDenied", 403)
    assert objects_on_disk(other) == ["secret.txt"]


def test_a_finished_job_writes_during_the_grace_period_then_gets_access_denied(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    client.put_object(Bucket=bucket, Key="final.pt", Body=b"x")
    expire(cred, timezone.now() - timedelta(seconds=1))
    code = _code(client.put_object, Bucket=bucket, Key="late.pt", Body=b"x")
    assert code == ("AccessDenied", 403)
    # The credentials ended with the job: reading is over too (staff API keys still read it).
    assert _code(client.get_object, Bucket=bucket, Key="final.pt") == ("AccessDenied", 403)
    assert objects_on_disk(bucket) == ["final.pt"]


def test_a_skewed_client_clock_is_request_time_too_skewed(http_server, s3, writer, monkeypatch) -> None:
    cred = writer()
    client = client_for(s3, http_server, cred)
    monkeypatch.setattr(clock, "now", lambda: timezone.now() + timedelta(minutes=16))
    assert _code(client.list_objects_v2, Bucket=bucket_of(cred)) == ("RequestTimeTooSkewed", 403)
    monkeypatch.setattr(clock, "now", lambda: timezone.now() + timedelta(minutes=14))
    assert client.list_objects_v2(Bucket=bucket_of(cred))["KeyCount"] == 0


def test_one_clock_patch_reaches_the_signature_check_and_the_write_window(http_server, s3, writer, monkeypatch) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    expire(cred, timezone.now() + timedelta(minutes=5))
    client.put_object(Bucket=bucket, Key="before.pt", Body=b"x")
    # Ten minutes on: the signature is within the allowed skew, the job's grace period is over.
    monkeypatch.setattr(clock, "now", lambda: timezone.now() + timedelta(minutes=10))
    assert _code(client.put_object, Bucket=bucket, Key="after.pt", Body=b"x") == ("AccessDenied", 403)
    assert _code(client.get_object, Bucket=bucket, Key="before.pt") == ("AccessDenied", 403)
    assert objects_on_disk(bucket) == ["before.pt"]


def test_an_expired_presigned_url_is_refused(http_server, s3, writer, monkeypatch) -> None:
    cred = writer()
    client = client_for(s3, http_server, cred)
    client.put_object(Bucket=bucket_of(cred), Key="k", Body=b"x")
    v4 = client_for(s3, http_server, cred, signature_version="s3v4")
    urls = [
        client.generate_presigned_url("get_object", Params={"Bucket": bucket_of(cred), "Key": "k"}, ExpiresIn=60),
        v4.generate_presigned_url("get_object", Params={"Bucket": bucket_of(cred), "Key": "k"}, ExpiresIn=60),
    ]
    monkeypatch.setattr(clock, "now", lambda: timezone.now() + timedelta(minutes=2))
    for url in urls:
        response = httpx.get(url)
        assert response.status_code == 403
        assert "Request has expired" in response.text


def test_anonymous_requests_are_access_denied(http_server) -> None:
    for method, path in [("GET", ""), ("GET", "/b"), ("PUT", "/b/k"), ("DELETE", "/b/k")]:
        response = httpx.request(method, http_server.url + path, content=b"x" if method == "PUT" else None)
        assert response.status_code == 403, (method, path)
        assert "<Code>AccessDenied</Code>" in response.text


def _staff_client(endpoint, s3, user):  # type: ignore[no-untyped-def]
    api_key, raw = api_key_create(owner=user, name="s3")
    assert api_key_secret(api_key) == raw
    return api_key, s3(endpoint, api_key.prefix, raw)


def test_staff_api_keys_read_and_list_every_bucket(endpoint, s3, writer, olivia) -> None:
    first, second = writer(), writer()
    client_for(s3, endpoint, first).put_object(Bucket=bucket_of(first), Key="a/model.bin", Body=b"one")
    client_for(s3, endpoint, second).put_object(Bucket=bucket_of(second), Key="b.bin", Body=b"two")
    _, staff = _staff_client(endpoint, s3, olivia)
    names = [b["Name"] for b in staff.list_buckets()["Buckets"]]
    assert names == sorted([bucket_of(first), bucket_of(second)])
    assert [o["Key"] for o in staff.list_objects_v2(Bucket=bucket_of(first))["Contents"]] == ["a/model.bin"]
    assert staff.get_object(Bucket=bucket_of(second), Key="b.bin")["Body"].read() == b"two"
    assert _code(staff.list_objects_v2, Bucket="no-such-job") == ("NoSuchBucket", 404)
    # Read-only: staff keys never write job outputs.
    assert _code(staff.put_object, Bucket=bucket_of(first), Key="x", Body=b"x") == ("AccessDenied", 403)
    assert _code(staff.delete_object, Bucket=bucket_of(first), Key="a/model.bin") == ("AccessDenied", 403)


def test_staff_api_keys_read_every_bucket_only_with_the_view_job_permission(http_server, s3, writer, clerk) -> None:
    cred = writer()
    client_for(s3, http_server, cred).put_object(Bucket=bucket_of(cred), Key="k", Body=b"x")
    _, client = _staff_client(http_server, s3, clerk)
    # Like every user's key, it reads only its own jobs' buckets (none) until it may see all jobs.
    assert client.list_buckets()["Buckets"] == []
    assert _code(client.get_object, Bucket=bucket_of(cred), Key="k") == ("AccessDenied", 403)
    grant(clerk, "providers.view_job")
    assert client.get_object(Bucket=bucket_of(cred), Key="k")["Body"].read() == b"x"
    assert [b["Name"] for b in client.list_buckets()["Buckets"]] == [bucket_of(cred)]


def test_a_normal_users_api_key_reads_nothing_of_other_users_jobs(endpoint, s3, writer, alice) -> None:
    cred = writer()
    client_for(s3, endpoint, cred).put_object(Bucket=bucket_of(cred), Key="k", Body=b"x")
    _, client = _staff_client(endpoint, s3, alice)
    assert client.list_buckets()["Buckets"] == []  # their own jobs' buckets: tests/storage/test_output_access.py
    assert _code(client.get_object, Bucket=bucket_of(cred), Key="k") == ("AccessDenied", 403)


def test_a_revoked_api_key_stops_working(endpoint, s3, olivia) -> None:
    api_key, client = _staff_client(endpoint, s3, olivia)
    client.list_buckets()
    api_key_revoke(api_key=api_key)
    assert _code(client.list_buckets) == ("InvalidAccessKeyId", 403)


def test_the_legacy_upload_token_header_uploads_and_reads(http_server, writer, olivia) -> None:
    cred = writer()
    token = job_upload_bearer(cred.access_key_id)
    url = f"{http_server.url}/{bucket_of(cred)}/logs/train.log"
    put = httpx.put(url, content=b"line 1\n", headers={"X-Upload-Token": token})
    assert put.status_code == 200, put.text
    assert put.headers["etag"]
    got = httpx.get(url, headers={"X-Upload-Token": token})
    assert got.content == b"line 1\n"
    assert httpx.get(url, headers={"X-Upload-Token": "wrong"}).status_code == 403
    # An API key prefix is not a secret, so it is never accepted as an upload token.
    api_key, _ = api_key_create(owner=olivia, name="s3")
    refused = httpx.get(url, headers={"X-Upload-Token": api_key.prefix})
    assert refused.status_code == 403
    assert "<Code>InvalidAccessKeyId</Code>" in refused.text


def _key_id_in(url: str) -> str:
    query = dict(parse_qsl(urlsplit(url).query))
    return query.get("AWSAccessKeyId") or query["X-Amz-Credential"].split("/")[0]


@pytest.mark.parametrize("signer", [{}, {"signature_version": "s3v4"}], ids=["sigv2-default", "sigv4"])
def test_the_access_key_id_in_a_presigned_url_is_not_an_upload_token(http_server, s3, writer, signer) -> None:
    """Issue 12 finding 3: whoever saw a read-only, expiring link could overwrite, list and
    delete the bucket by sending the link's access key id as X-Upload-Token."""
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    client.put_object(Bucket=bucket, Key="model.safetensors", Body=b"the real weights")
    presigner = client_for(s3, http_server, cred, **signer)
    link = presigner.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "model.safetensors"})
    assert httpx.get(link).content == b"the real weights"
    seen = _key_id_in(link)
    assert seen == cred.access_key_id and job_upload_bearer(cred.access_key_id) not in link
    stolen = {"X-Upload-Token": seen}
    url = f"{http_server.url}/{bucket}/model.safetensors"
    attempts = [
        httpx.put(url, content=b"evil", headers=stolen),
        httpx.get(f"{http_server.url}/{bucket}", headers=stolen),
        httpx.get(url, headers=stolen),
        httpx.delete(url, headers=stolen),
        httpx.put(f"{http_server.url}/{bucket}/planted", content=b"evil", headers=stolen),
    ]
    for response in attempts:
        assert response.status_code == 403, response.text
        assert "<Code>InvalidAccessKeyId</Code>" in response.text
        assert "SIMPLETUNER_UPLOAD_TOKEN" in response.text
    assert objects_on_disk(bucket) == ["model.safetensors"]
    assert client.get_object(Bucket=bucket, Key="model.safetensors")["Body"].read() == b"the real weights"


def test_an_upload_token_with_a_forged_or_borrowed_proof_is_refused(http_server, writer) -> None:
    mine, other = writer(), writer()
    url = f"{http_server.url}/{bucket_of(mine)}/k"
    proof = job_upload_bearer(mine.access_key_id).split(".", 1)[1]
    other_proof = job_upload_bearer(other.access_key_id).split(".", 1)[1]
    for token in (
        f"{mine.access_key_id}.",
        f"{mine.access_key_id}.{other_proof}",
        f"{mine.access_key_id}.{proof[:-1]}",
        f"{mine.access_key_id}.{proof}x",
        f"{other.access_key_id}.{proof}",
        f".{proof}",
        f"{mine.access_key_id}.{proof}.{proof}",
        f"{mine.access_key_id}\u00e9.{proof}",
    ):
        response = httpx.put(url, content=b"x", headers={"X-Upload-Token": token.encode()})
        assert response.status_code == 403, token
        assert "<Code>InvalidAccessKeyId</Code>" in response.text
    assert objects_on_disk(bucket_of(mine)) == []


def test_the_legacy_upload_token_can_be_switched_off(http_server, writer, settings) -> None:
    settings.SIMPLETUNER_S3_LEGACY_UPLOAD_TOKEN = False
    cred = writer()
    response = httpx.put(
        f"{http_server.url}/{bucket_of(cred)}/k",
        content=b"x",
        headers={"X-Upload-Token": job_upload_bearer(cred.access_key_id)},
    )
    assert response.status_code == 403
    assert objects_on_disk(bucket_of(cred)) == []


def test_any_region_in_the_credential_scope_is_accepted(http_server, writer) -> None:
    cred = writer()
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=http_server.url,
        aws_access_key_id=cred.access_key_id,
        aws_secret_access_key=cred.secret,
        region_name="eu-central-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    client.put_object(Bucket=bucket_of(cred), Key="k", Body=b"x")
    assert objects_on_disk(bucket_of(cred)) == ["k"]
