"""The S3 endpoint's rate-limit key: a job's upload credential, not the client IP.

Registered with the rate limiter as settings.RATE_LIMIT_KEYS["storage"] (the limiter is
library code and knows no app); it keys every request under the storage mount, whatever
rule matches it.

Storage is keyed per job credential because one job uploads a checkpoint as hundreds of
multipart parts, and many jobs of a provider reach us from the same few egress IPs: per IP,
one job's upload would starve the others (and itself). The access key id is read from the
request (SigV4 header or presigned query, SigV2 presigned query, the id an X-Upload-Token
`<id>.<proof>` names) and used only if it is a real job's upload token: a caller who merely
invents ids stays on its IP's budget, and API-key prefixes never key a budget. The signature
is still checked by the storage view, not here. Accepted: the upload token is not a secret (it
is in every URL the job presigns), so whoever holds such a URL can spend that job's budget
with requests that then fail authentication; checking signatures here would double the
storage view's work on every request.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from django.http import HttpRequest

from providers.models import Job
from storage.auth import UPLOAD_TOKEN_HEADER, upload_token_key_id
from storage.mount import is_storage_path


def presented_access_key_id(request: HttpRequest) -> str:
    """The access key id a storage request claims, unverified ("" if none)."""
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("AWS4-HMAC-SHA256") and "Credential=" in authorization:
        return authorization.split("Credential=", 1)[1].split("/", 1)[0].strip()
    query = dict(parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True))
    if "X-Amz-Credential" in query:
        return query["X-Amz-Credential"].split("/", 1)[0]
    if "AWSAccessKeyId" in query:
        return query["AWSAccessKeyId"]
    return upload_token_key_id(request.headers.get(UPLOAD_TOKEN_HEADER, ""))


def storage_key(request: HttpRequest, ip: str) -> str:
    """`job:<id>` for a job's upload credential, else `ip:<address>`."""
    access_key_id = presented_access_key_id(request)
    if access_key_id:
        # Only whether it is a job's upload token: one indexed lookup, none of the credential
        # resolution (secrets, grace period) that the storage view does anyway.
        job_id = Job.objects.filter(upload_token=access_key_id).values_list("pk", flat=True).first()
        if job_id is not None:
            return f"job:{job_id}"
    return f"ip:{ip}"


class StorageKey:
    """cloudops.ratelimit.keys.RequestKey for the S3 endpoint."""

    def applies(self, path: str) -> bool:
        return is_storage_path(path)

    def key(self, request: HttpRequest, ip: str) -> str:
        return storage_key(request, ip)


STORAGE_KEY = StorageKey()
