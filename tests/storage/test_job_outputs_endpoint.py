"""GET /api/cloud/jobs/{id}/outputs: a job's objects with presigned download links that plain
httpx downloads from the live server; links expire, cannot be altered, only GET, and stop
working when their user may no longer see the job."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone

from cloudops.apikeys import api_key_create
from providers.config import provider_config_get
from providers.models import Job, JobStatus
from storage import clock
from storage.credentials import job_credential
from tests.governance.conftest import in_group
from tests.storage.conftest import Endpoint, client_for, objects_on_disk

KEYS = {"model.safetensors": b"weights", "samples/step 100/ü+1.png": b"png bytes"}


def _job(s3, endpoint: Endpoint, owner: AbstractUser) -> str:  # type: ignore[no-untyped-def]
    provider_config_get("local")
    job = Job.objects.create(owner=owner, provider="local", status=JobStatus.RUNNING)
    credential = job_credential(job.upload_token)
    assert credential is not None
    for key, body in KEYS.items():
        client_for(s3, endpoint, credential).put_object(Bucket=job.id, Key=key, Body=body)
    return job.id


def _outputs(endpoint: Endpoint, user: AbstractUser, job_id: str) -> httpx.Response:
    _, raw = api_key_create(owner=user, name="api")
    headers = {"Authorization": f"Bearer {raw}"}
    return httpx.get(f"{endpoint.base}/api/cloud/jobs/{job_id}/outputs", headers=headers, verify=endpoint.verify)


def _links(endpoint: Endpoint, user: AbstractUser, job_id: str) -> dict[str, str]:
    response = _outputs(endpoint, user, job_id)
    assert response.status_code == 200, response.text
    return {item["key"]: item["url"] for item in response.json()["objects"]}


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | changes
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def test_the_owner_lists_the_outputs_and_downloads_them_with_plain_httpx(endpoint, s3, alice) -> None:
    job_id = _job(s3, endpoint, alice)
    response = _outputs(endpoint, alice, job_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["job_id"] == job_id and body["status"] == "running"
    assert body["count"] == 2 and body["truncated"] is False
    assert body["expires_in"] == 900
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert timezone.now() + timedelta(seconds=890) < expires_at <= timezone.now() + timedelta(seconds=900)
    assert [(o["key"], o["size"]) for o in body["objects"]] == [(k, len(v)) for k, v in sorted(KEYS.items())]
    for item in body["objects"]:
        assert datetime.fromisoformat(item["last_modified"]) <= timezone.now() + timedelta(seconds=1)
        assert item["url"].startswith(f"{endpoint.base}/api/cloud/storage/{job_id}/")
        downloaded = httpx.get(item["url"], verify=endpoint.verify)
        assert downloaded.status_code == 200, downloaded.text
        assert downloaded.content == KEYS[item["key"]]


def test_the_link_lifetime_is_a_setting(http_server, s3, alice, settings) -> None:
    settings.SIMPLETUNER_OUTPUT_URL_EXPIRES_SECONDS = 60
    job_id = _job(s3, http_server, alice)
    response = _outputs(http_server, alice, job_id)
    assert response.json()["expires_in"] == 60
    assert dict(parse_qsl(urlsplit(response.json()["objects"][0]["url"]).query))["X-Amz-Expires"] == "60"


def test_an_expired_link_is_refused(http_server, s3, alice, monkeypatch) -> None:
    job_id = _job(s3, http_server, alice)
    url = _links(http_server, alice, job_id)["model.safetensors"]
    monkeypatch.setattr(clock, "now", lambda: timezone.now() + timedelta(seconds=901))
    refused = httpx.get(url)
    assert refused.status_code == 403
    assert "Request has expired" in refused.text


def test_an_altered_link_is_refused(http_server, s3, alice) -> None:
    job_id, other_job = _job(s3, http_server, alice), _job(s3, http_server, alice)
    url = _links(http_server, alice, job_id)["model.safetensors"]
    tampered = [
        url.replace("model.safetensors", "samples/step%20100/%C3%BC%2B1.png"),  # another key
        url.replace(job_id, other_job),  # another job, even one of the same user
        _with_query(url, **{"X-Amz-Expires": "604800"}),
        _with_query(url, **{"X-Amz-Date": "20990101T000000Z"}),
    ]
    for changed in tampered:
        response = httpx.get(changed)
        assert response.status_code == 403, changed
        assert "<Code>SignatureDoesNotMatch</Code>" in response.text or "<Code>AccessDenied</Code>" in response.text


@pytest.mark.parametrize("method", ["PUT", "DELETE", "HEAD"])
def test_a_link_is_good_for_get_only(http_server, s3, alice, method) -> None:
    job_id = _job(s3, http_server, alice)
    url = _links(http_server, alice, job_id)["model.safetensors"]
    response = httpx.request(method, url, content=b"evil" if method == "PUT" else None)
    assert response.status_code == 403
    assert sorted(objects_on_disk(job_id)) == sorted(KEYS)


def test_other_users_jobs_are_a_404_as_the_job_itself(http_server, s3, alice, bob) -> None:
    job_id = _job(s3, http_server, alice)
    refused = _outputs(http_server, bob, job_id)
    assert refused.status_code == 404
    assert _outputs(http_server, bob, "job-nosuchjob").status_code == 404
    _, raw = api_key_create(owner=bob, name="api")
    detail = httpx.get(f"{http_server.base}/api/cloud/jobs/{job_id}", headers={"Authorization": f"Bearer {raw}"})
    assert detail.status_code == refused.status_code


def test_anonymous_callers_are_refused(http_server, s3, alice) -> None:
    job_id = _job(s3, http_server, alice)
    assert httpx.get(f"{http_server.base}/api/cloud/jobs/{job_id}/outputs").status_code in (401, 403)


def test_viewers_see_their_own_and_leads_everyones(http_server, s3, make_user, alice) -> None:
    vera = in_group(make_user("vera"), "viewer")
    lena = in_group(make_user("lena"), "lead")
    own = _job(s3, http_server, vera)
    assert httpx.get(_links(http_server, vera, own)["model.safetensors"]).content == b"weights"
    theirs = _job(s3, http_server, alice)
    assert _outputs(http_server, vera, theirs).status_code == 404
    assert httpx.get(_links(http_server, lena, theirs)["model.safetensors"]).content == b"weights"


def test_a_link_stops_working_when_its_user_may_no_longer_see_the_job(http_server, s3, make_user, alice) -> None:
    lena = in_group(make_user("lena"), "lead")
    job_id = _job(s3, http_server, alice)
    url = _links(http_server, lena, job_id)["model.safetensors"]
    lena.groups.clear()
    refused = httpx.get(url)
    assert refused.status_code == 403
    assert "may no longer see job" in refused.text
    lena.is_active = False
    lena.save()
    assert "<Code>InvalidAccessKeyId</Code>" in httpx.get(url).text


def test_a_job_without_uploads_lists_nothing(http_server, alice) -> None:
    job = Job.objects.create(owner=alice, provider="local", status=JobStatus.PENDING)
    body = _outputs(http_server, alice, job.id).json()
    assert (body["objects"], body["count"], body["truncated"]) == ([], 0, False)
