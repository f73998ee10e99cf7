"""Authenticating an S3 request: which form it uses, whose key, and whether the signature holds.

Forms, tried in this order: SigV4 `Authorization` header, SigV4 presigned query
(`X-Amz-Algorithm`), SigV2 presigned query (`AWSAccessKeyId` + `Signature`, boto3's default
for presigned GETs), and the legacy `X-Upload-Token` header (a job's bearer token,
`<access key id>.<proof>`: never the access key id alone, which every presigned URL shows).
Anything else is anonymous, and anonymous callers get AccessDenied.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import unquote_to_bytes

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest

from providers.credentials import job_upload_bearer
from storage import clock, errors, signing
from storage.credentials import Credential, credential_resolve
from storage.mount import S3_ROOT_SCOPE_KEY, STORAGE_MOUNT, signed_path
from storage.xml import NOT_XML

UPLOAD_TOKEN_HEADER = "x-upload-token"


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


def _decode(raw: str) -> str:
    """%XX escapes, then UTF-8, strictly (UnicodeDecodeError). `raw` holds the bytes as sent,
    as latin-1 text; servers' own decoding replaces errors, folding every invalid sequence
    (`%FF`, `%FE`, ...) into U+FFFD, i.e. into one name."""
    return unquote_to_bytes(raw.encode("latin-1")).decode("utf-8")


def parse_query(raw: str) -> list[tuple[str, str]]:
    """Query pairs decoded as S3 does: %XX only ("+" stays a plus sign), in the order sent.

    A parameter that is not UTF-8, or holds what XML cannot carry (listings echo prefix,
    delimiter, markers and tokens), is refused, as is a line break (response-* overrides
    are echoed as headers).
    """
    pairs = []
    for item in raw.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append(_query_pair(name, value))
    return pairs


def _query_pair(raw_name: str, raw_value: str) -> tuple[str, str]:
    try:
        name = _decode(raw_name)
    except UnicodeDecodeError:
        raise errors.InvalidURI("Couldn't parse the specified URI: a query parameter name is not UTF-8.") from None
    if NOT_XML.search(name) or "\r" in name or "\n" in name:
        raise errors.InvalidURI("Couldn't parse the specified URI: a query parameter name has control characters.")
    try:
        value = _decode(raw_value)
    except UnicodeDecodeError:
        raise errors.InvalidArgument(f"The value of {name!r} is not valid UTF-8.", ArgumentName=name) from None
    if NOT_XML.search(value) or "\r" in value or "\n" in value:
        raise errors.InvalidArgument(
            f"The value of {name!r} contains a control character (NUL, CR, LF, ...) or a non-character.",
            ArgumentName=name,
        )
    return name, value


def request_path(request: HttpRequest) -> str:
    """The request's path from the bytes the client sent, decoded strictly (InvalidURI if it
    is not UTF-8, as AWS answers). Object keys come from it: the server's decoded path (and
    so Django's URL arguments) has invalid sequences replaced, `k%FF` and `k%EF%BF%BD` both
    becoming "k\ufffd". Without an ASGI scope (Django's test client) Django's path is used."""
    scope = getattr(request, "scope", None) or {}
    raw_path = scope.get("raw_path")
    if not raw_path:
        return request.path
    try:
        return _decode(raw_path.decode("latin-1").split("?", 1)[0])
    except UnicodeDecodeError:
        raise errors.InvalidURI(
            "Couldn't parse the specified URI: the path is not UTF-8 once percent-decoded."
        ) from None


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
    # At an S3 host's root (storage.mount.root_mounted) the client signed the path without the mount.
    mount = "" if scope.get(S3_ROOT_SCOPE_KEY) else STORAGE_MOUNT
    return signing.RequestParts(
        method=request.method or "GET",
        raw_path=signed_path(path, scope),
        query=parse_query(query),
        headers=headers,
        mount=mount,
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
        signing.verify_v2(parts, v2, credential.secret, clock.now())
        credential.check_current(clock.now())
        return Authenticated(credential)
    elif authorization.startswith("AWS "):
        raise errors.InvalidRequest("Signature Version 2 headers are not supported; sign with AWS4-HMAC-SHA256.")
    elif parts.headers.get(UPLOAD_TOKEN_HEADER) and settings.SIMPLETUNER_S3_LEGACY_UPLOAD_TOKEN:
        return await _upload_token(parts.headers[UPLOAD_TOKEN_HEADER])
    else:
        raise errors.AccessDenied("Anonymous access is not allowed: sign the request with your access key.")
    credential = await _resolve(claim.scope.access_key_id)
    key = signing.verify_v4(parts, claim, credential.secret)
    signing.check_time(claim, clock.now(), max_skew)
    credential.check_current(clock.now())
    return Authenticated(credential, claim, key)


def upload_token_key_id(token: str) -> str:
    """The access key id an `X-Upload-Token: <access key id>.<proof>` names ("" if malformed)."""
    access_key_id, dot, proof = token.strip().partition(".")
    return access_key_id if dot and proof else ""


async def _upload_token(token: str) -> Authenticated:
    access_key_id = upload_token_key_id(token)
    # The access key id alone is in every presigned URL: the token must carry its proof too.
    # Checked before any lookup, so made-up tokens cost an HMAC, not a query.
    genuine = bool(access_key_id) and hmac.compare_digest(
        token.strip().encode(), job_upload_bearer(access_key_id).encode()
    )
    credential = await sync_to_async(credential_resolve)(access_key_id) if genuine else None
    # Only credentials meant to be bearer tokens: an API key's prefix is no secret.
    if credential is None or not credential.bearer:
        raise errors.InvalidAccessKeyId(
            "The X-Upload-Token is not a valid upload token: send the job's SIMPLETUNER_UPLOAD_TOKEN "
            "(<access key id>.<token>); the access key id alone is not accepted."
        )
    credential.check_current(clock.now())
    return Authenticated(credential)
