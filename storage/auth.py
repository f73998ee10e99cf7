"""Authenticating an S3 request: which form it uses, whose key, and whether the signature holds.

Forms, tried in this order: SigV4 `Authorization` header, SigV4 presigned query
(`X-Amz-Algorithm`), SigV2 presigned query (`AWSAccessKeyId` + `Signature`, boto3's default
for presigned GETs), and the legacy `X-Upload-Token` header (a job's access key id alone).
Anything else is anonymous, and anonymous callers get AccessDenied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from storage import errors, signing
from storage.credentials import Credential, credential_resolve
from storage.mount import STORAGE_MOUNT

UPLOAD_TOKEN_HEADER = "x-upload-token"


def now() -> datetime:
    """The server clock (tests replace it to check skew and expiry)."""
    return timezone.now()


@dataclass(frozen=True)
class Authenticated:
    credential: Credential
    # The SigV4 claim and signing key, which the body is checked against as it streams;
    # None for SigV2 presigned URLs and X-Upload-Token (their payload is unsigned).
    claim: signing.SignedRequest | None = None
    key: bytes | None = None

    @property
    def payload(self) -> str:
        return self.claim.payload if self.claim is not None else signing.UNSIGNED_PAYLOAD


def parse_query(raw: str) -> list[tuple[str, str]]:
    """Query pairs decoded as S3 does: %XX only ("+" stays a plus sign), in the order sent."""
    pairs = []
    for item in raw.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def request_parts(request: HttpRequest) -> signing.RequestParts:
    scope = getattr(request, "scope", None) or {}
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1").split("?", 1)[0] if raw_path else request.path
    query = scope.get("query_string", b"").decode("latin-1") if scope else request.META.get("QUERY_STRING", "")
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    if not scope:
        headers = {name.lower(): value for name, value in request.headers.items()}
    return signing.RequestParts(
        method=request.method or "GET", raw_path=path, query=parse_query(query), headers=headers, mount=STORAGE_MOUNT
    )


async def _resolve(access_key_id: str) -> Credential:
    credential = await sync_to_async(credential_resolve)(access_key_id)
    if credential is None:
        raise errors.InvalidAccessKeyId(AWSAccessKeyId=access_key_id[:128])
    return credential


async def authenticate(request: HttpRequest) -> Authenticated:
    parts = request_parts(request)
    query = dict(parts.query)
    authorization = parts.headers.get("authorization", "")
    max_skew = timedelta(seconds=settings.SIMPLETUNER_S3_MAX_SKEW_SECONDS)
    if authorization.startswith(signing.ALGORITHM):
        claim = signing.parse_authorization(parts)
    elif "X-Amz-Algorithm" in query or "X-Amz-Credential" in query:
        claim = signing.parse_presigned(parts)
    elif "AWSAccessKeyId" in query or "Signature" in query:
        v2 = signing.parse_presigned_v2(parts)
        credential = await _resolve(v2.access_key_id)
        signing.verify_v2(parts, v2, credential.secret, now())
        return Authenticated(credential)
    elif authorization.startswith("AWS "):
        raise errors.InvalidRequest("Signature Version 2 headers are not supported; sign with AWS4-HMAC-SHA256.")
    elif parts.headers.get(UPLOAD_TOKEN_HEADER) and settings.SIMPLETUNER_S3_LEGACY_UPLOAD_TOKEN:
        return await _upload_token(parts.headers[UPLOAD_TOKEN_HEADER])
    else:
        raise errors.AccessDenied("Anonymous access is not allowed: sign the request with your access key.")
    credential = await _resolve(claim.scope.access_key_id)
    key = signing.verify_v4(parts, claim, credential.secret)
    signing.check_time(claim, now(), max_skew)
    return Authenticated(credential, claim, key)


async def _upload_token(token: str) -> Authenticated:
    credential = await sync_to_async(credential_resolve)(token.strip())
    # Only credentials meant to be bearer tokens: an API key's prefix is no secret.
    if credential is None or not credential.bearer:
        raise errors.InvalidAccessKeyId("The X-Upload-Token is not a valid upload token.")
    return Authenticated(credential)
