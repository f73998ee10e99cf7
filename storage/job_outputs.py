"""A job's output files for the admin's job page and the API (settings.JOB_OUTPUTS): providers
lists, serves and links them through these functions, since providers does not import storage."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from django.conf import settings

from providers.selectors import job_output_root
from storage import clock, errors, signing, store
from storage.credentials import download_key_id, download_secret
from storage.mount import STORAGE_MOUNT

# GET /api/cloud/jobs/{id}/outputs lists at most this many objects (S3 ListObjects lists all).
OUTPUT_LINKS_LIMIT = 1000


def output_files(job_id: str) -> list[tuple[str, int]]:
    """(key, size) of every object in the job's bucket, in S3 order."""
    return [(key, st.st_size) for key, st in store.walk_keys(job_output_root(job_id), job_id, "")]


def output_open(job_id: str, key: str) -> tuple[BinaryIO, str]:
    """The object opened for reading and its content type; FileNotFoundError if there is none
    (or the key is no valid key: the same path checks as the S3 endpoint's)."""
    try:
        fd, info = store.open_object(job_output_root(job_id), job_id, key)
    except errors.S3Error:
        raise FileNotFoundError(key) from None
    return os.fdopen(fd, "rb"), info.content_type


def output_links(*, job_id: str, user_id: int, base_url: str) -> dict[str, Any]:
    """The job's objects (key, size, last_modified) with presigned GET links for `user_id`.

    `base_url` is where the caller reached us (scheme and host: the links must name the host
    the client will send, which the signature covers). The links are SigV4 presigned URLs of
    the S3 endpoint, signed with the user's download credential (storage.credentials
    .download_credential), valid SIMPLETUNER_OUTPUT_URL_EXPIRES_SECONDS; the endpoint checks
    them like any client's, and again that the user may still see the job.
    """
    now = clock.now().replace(microsecond=0)
    expires = settings.SIMPLETUNER_OUTPUT_URL_EXPIRES_SECONDS
    access_key_id = download_key_id(user_id, job_id)
    secret = download_secret(access_key_id)
    host = urlsplit(base_url).netloc
    found = store.walk_keys(job_output_root(job_id), job_id, "")
    objects = []
    for key, st in found[:OUTPUT_LINKS_LIMIT]:
        path = f"{STORAGE_MOUNT}/{job_id}/{signing.uri_encode(key, slash=True)}"
        query = signing.presign_v4(
            method="GET", host=host, raw_path=path, access_key_id=access_key_id, secret=secret, now=now, expires=expires
        )
        modified = store.ObjectInfo(key=key, size=st.st_size, mtime_ns=st.st_mtime_ns).last_modified
        objects.append({"key": key, "size": st.st_size, "last_modified": modified, "url": f"{base_url}{path}?{query}"})
    return {
        "objects": objects,
        "count": len(found),
        "truncated": len(found) > OUTPUT_LINKS_LIMIT,
        "expires_in": expires,
        "expires_at": now + timedelta(seconds=expires),
    }
