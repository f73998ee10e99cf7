"""AWS request signatures, verified server-side: SigV4 (header and presigned) and SigV2 presigned.

Written here because no maintained Python library verifies S3 signatures server-side (botocore
and requests-aws4auth only sign); the algorithms below follow AWS's published specification and
are tested against requests that real boto3 and AWS CLI clients sign, and AWS's own examples.

Every function is pure: the caller passes the request's parts and the secret, so the module
knows nothing about credentials, the database or the clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

from storage import errors

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_MODES = (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER)
MAX_PRESIGNED_EXPIRES = 7 * 24 * 3600

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<headers>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-fA-F]{64})\s*$"
)
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Scope:
    """The credential scope: `<key id>/<yyyymmdd>/<region>/<service>/aws4_request`."""

    access_key_id: str
    date: str
    region: str
    service: str

    @property
    def text(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"

    @classmethod
    def parse(cls, credential: str, error: type[errors.S3Error]) -> Scope:
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != "aws4_request" or not re.fullmatch(r"\d{8}", parts[1]) or not parts[0]:
            raise error(f"The credential {credential!r} is not <key>/<date>/<region>/s3/aws4_request.")
        if parts[3] != "s3":
            raise error(f"This endpoint signs for service 's3', not {parts[3]!r}.")
        return cls(access_key_id=parts[0], date=parts[1], region=parts[2], service=parts[3])


@dataclass(frozen=True)
class SignedRequest:
    """What a SigV4 request claims: who signed, when, over which headers, with what signature.

    `payload` is the x-amz-content-sha256 value (a hex digest, UNSIGNED-PAYLOAD or a STREAMING-*
    mode); the body is checked against it later, while it streams.
    """

    scope: Scope
    amz_date: str
    signed_headers: tuple[str, ...]
    signature: str
    payload: str
    presigned: bool
    expires: int | None = None

    @property
    def signing_time(self) -> datetime:
        return parse_amz_date(self.amz_date)


@dataclass(frozen=True)
class RequestParts:
    """The parts of an HTTP request that signatures cover, as the server received them."""

    method: str
    raw_path: str  # percent-encoded, as sent, without the query
    query: list[tuple[str, str]]  # decoded pairs, in the order sent
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ","
    mount: str = ""  # the URL prefix before /{bucket} (e.g. "/api/cloud/storage")


def is_sha256(text: str) -> bool:
    return bool(_SHA256_RE.match(text))


def parse_amz_date(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise errors.AccessDenied(f"X-Amz-Date {value!r} is not in the form YYYYMMDDTHHMMSSZ.") from None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret: str, scope: Scope) -> bytes:
    key = _hmac(("AWS4" + secret).encode(), scope.date)
    for part in (scope.region, scope.service, "aws4_request"):
        key = _hmac(key, part)
    return key


def uri_encode(text: str, *, slash: bool = False) -> str:
    """AWS URI encoding: every byte except A-Z a-z 0-9 - _ . ~ (and "/" in paths) as %XX."""
    return quote(text, safe="-_.~/" if slash else "-_.~")


def canonical_paths(raw_path: str) -> list[str]:
    """The canonical URI candidates: as sent, and re-encoded the way AWS specifies.

    Clients encode a few characters differently (e.g. "!" or "+"), so a request signed over
    either spelling of the same path is accepted; both name the same object.
    """
    as_sent = raw_path or "/"
    normalised = uri_encode(unquote(as_sent), slash=True)
    return [as_sent] if normalised == as_sent else [as_sent, normalised]


def canonical_query(query: Iterable[tuple[str, str]], *, exclude: str | None = None) -> str:
    pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in query if k != exclude)
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_headers(headers: Mapping[str, str], names: Iterable[str]) -> str:
    lines = []
    for name in names:
        if name not in headers:
            raise errors.SignatureDoesNotMatch(f"The signed header {name!r} is missing from the request.")
        lines.append(f"{name}:{_SPACES.sub(' ', headers[name].strip())}\n")
    return "".join(lines)


def string_to_sign(claim: SignedRequest, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    return f"{ALGORITHM}\n{claim.amz_date}\n{claim.scope.text}\n{digest}"


def _canonical_requests(parts: RequestParts, claim: SignedRequest) -> Iterable[str]:
    query = canonical_query(parts.query, exclude="X-Amz-Signature" if claim.presigned else None)
    headers = canonical_headers(parts.headers, claim.signed_headers)
    for path in canonical_paths(parts.raw_path):
        yield "\n".join([parts.method, path, query, headers, ";".join(claim.signed_headers), claim.payload])


def verify_v4(parts: RequestParts, claim: SignedRequest, secret: str) -> bytes:
    """Check the signature; returns the signing key (signed chunks are verified with it)."""
    key = signing_key(secret, claim.scope)
    for canonical in _canonical_requests(parts, claim):
        expected = hmac.new(key, string_to_sign(claim, canonical).encode(), hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, claim.signature.lower()):
            return key
    raise errors.SignatureDoesNotMatch()


def parse_authorization(parts: RequestParts) -> SignedRequest:
    """The SigV4 claim of an `Authorization: AWS4-HMAC-SHA256 ...` request."""
    match = _AUTH_RE.match(parts.headers.get("authorization", ""))
    if match is None:
        raise errors.AuthorizationHeaderMalformed(
            "The Authorization header must be 'AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...'."
        )
    scope = Scope.parse(match["credential"], errors.AuthorizationHeaderMalformed)
    amz_date = parts.headers.get("x-amz-date", "")
    if not amz_date:
        raise errors.AccessDenied("AWS authentication requires a valid X-Amz-Date header.")
    signed = tuple(match["headers"].lower().split(";"))
    if "host" not in signed:
        raise errors.AuthorizationHeaderMalformed("SignedHeaders must include 'host'.")
    payload = parts.headers.get("x-amz-content-sha256", "")
    if not payload:
        raise errors.InvalidRequest("Missing required header for this request: x-amz-content-sha256.")
    _check_payload_mode(payload)
    claim = SignedRequest(scope, amz_date, signed, match["signature"], payload, presigned=False)
    if scope.date != amz_date[:8]:
        raise errors.AuthorizationHeaderMalformed("The credential date does not match X-Amz-Date.")
    return claim


def parse_presigned(parts: RequestParts) -> SignedRequest:
    """The SigV4 claim of a presigned URL (`X-Amz-Algorithm=AWS4-HMAC-SHA256&...`)."""
    query = dict(parts.query)
    error = errors.AuthorizationQueryParametersError
    if query.get("X-Amz-Algorithm") != ALGORITHM:
        raise error("X-Amz-Algorithm only supports 'AWS4-HMAC-SHA256'.")
    missing = [
        name
        for name in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature")
        if not query.get(name)
    ]
    if missing:
        raise error(f"Query-string authentication requires {', '.join(missing)}.")
    try:
        expires = int(query["X-Amz-Expires"])
    except ValueError:
        raise error("X-Amz-Expires must be a number of seconds.") from None
    if not 0 < expires <= MAX_PRESIGNED_EXPIRES:
        raise error(f"X-Amz-Expires must be between 1 and {MAX_PRESIGNED_EXPIRES} seconds.")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", query["X-Amz-Signature"]):
        raise error("X-Amz-Signature must be 64 hex digits.")
    scope = Scope.parse(query["X-Amz-Credential"], error)
    signed = tuple(query["X-Amz-SignedHeaders"].lower().split(";"))
    payload = query.get("X-Amz-Content-Sha256") or parts.headers.get("x-amz-content-sha256") or UNSIGNED_PAYLOAD
    _check_payload_mode(payload)
    return SignedRequest(
        scope, query["X-Amz-Date"], signed, query["X-Amz-Signature"], payload, presigned=True, expires=expires
    )


def _check_payload_mode(payload: str) -> None:
    if payload in (UNSIGNED_PAYLOAD, *STREAMING_MODES) or _SHA256_RE.match(payload):
        return
    raise errors.InvalidArgument(f"x-amz-content-sha256 {payload[:80]!r} is not a SHA-256 or a supported payload mode.")


def check_time(claim: SignedRequest, now: datetime, max_skew: timedelta) -> None:
    """Header signatures must be fresh; presigned URLs must not have expired."""
    signed_at = claim.signing_time
    if claim.presigned:
        if now > signed_at + timedelta(seconds=claim.expires or 0):
            raise errors.AccessDenied("Request has expired")
        if signed_at - now > max_skew:
            raise errors.AccessDenied("Request is not valid yet (X-Amz-Date is in the future).")
        return
    if abs(now - signed_at) > max_skew:
        raise errors.RequestTimeTooSkewed(
            RequestTime=claim.amz_date,
            ServerTime=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            MaxAllowedSkewMilliseconds=str(int(max_skew.total_seconds() * 1000)),
        )


def presign_v4(
    *,
    method: str,
    host: str,
    raw_path: str,
    access_key_id: str,
    secret: str,
    now: datetime,
    expires: int,
    region: str = "us-east-1",
) -> str:
    """The query string of a SigV4 presigned URL for `method` on `raw_path` (percent-encoded,
    as the client will send it) at `host` (the Host header it will send), valid `expires`
    seconds from `now`. Only `host` is signed and the payload is UNSIGNED-PAYLOAD, as botocore
    presigns; `verify_v4` and `check_time` accept exactly what this produces."""
    if not 0 < expires <= MAX_PRESIGNED_EXPIRES:
        raise ValueError(f"expires must be between 1 and {MAX_PRESIGNED_EXPIRES} seconds")
    scope = Scope(access_key_id, now.strftime("%Y%m%d"), region, "s3")
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    query = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{access_key_id}/{scope.text}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    claim = SignedRequest(scope, amz_date, ("host",), "", UNSIGNED_PAYLOAD, presigned=True, expires=expires)
    canonical = "\n".join(
        [
            method,
            raw_path,
            canonical_query(query),
            canonical_headers({"host": host}, ("host",)),
            "host",
            UNSIGNED_PAYLOAD,
        ]
    )
    signature = hmac.new(signing_key(secret, scope), string_to_sign(claim, canonical).encode(), hashlib.sha256)
    return canonical_query([*query, ("X-Amz-Signature", signature.hexdigest())])


# --- Signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]) ------------------------------


def chunk_signature(key: bytes, claim: SignedRequest, previous: str, chunk_sha256: str) -> str:
    text = f"AWS4-HMAC-SHA256-PAYLOAD\n{claim.amz_date}\n{claim.scope.text}\n{previous}\n{EMPTY_SHA256}\n{chunk_sha256}"
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def trailer_signature(key: bytes, claim: SignedRequest, previous: str, trailer: bytes) -> str:
    digest = hashlib.sha256(trailer).hexdigest()
    text = f"AWS4-HMAC-SHA256-TRAILER\n{claim.amz_date}\n{claim.scope.text}\n{previous}\n{digest}"
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


# --- SigV2 presigned URLs (boto3's default for generate_presigned_url on custom endpoints) ----

# The sub-resources SigV2 signs (AWS's list, as botocore's HmacV1Auth uses it).
V2_SUBRESOURCES = frozenset(
    [
        "acl",
        "cors",
        "delete",
        "lifecycle",
        "location",
        "logging",
        "notification",
        "partNumber",
        "policy",
        "requestPayment",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "restore",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
    ]
)


@dataclass(frozen=True)
class V2Claim:
    access_key_id: str
    expires: int
    signature: str


def parse_presigned_v2(parts: RequestParts) -> V2Claim:
    query = dict(parts.query)
    error = errors.AuthorizationQueryParametersError
    if not all(query.get(name) for name in ("AWSAccessKeyId", "Expires", "Signature")):
        raise error("Query-string authentication (SigV2) requires AWSAccessKeyId, Expires and Signature.")
    try:
        expires = int(query["Expires"])
    except ValueError:
        raise error("Expires must be a Unix timestamp.") from None
    return V2Claim(query["AWSAccessKeyId"], expires, query["Signature"])


def _v2_resources(parts: RequestParts) -> list[str]:
    subresources = sorted((k, v) for k, v in parts.query if k in V2_SUBRESOURCES)
    suffix = ("?" + "&".join(f"{k}={v}" if v else k for k, v in subresources)) if subresources else ""
    paths = [parts.raw_path]
    if parts.mount and parts.raw_path.startswith(parts.mount):
        # botocore signs path-style requests over "/{bucket}/{key}", without the endpoint's path.
        inner = parts.raw_path[len(parts.mount) :] or "/"
        paths.append(inner if inner.count("/") > 1 else inner.rstrip("/") + "/")
    return [path + suffix for path in dict.fromkeys(paths)]


def verify_v2(parts: RequestParts, claim: V2Claim, secret: str, now: datetime) -> None:
    if now.timestamp() > claim.expires:
        raise errors.AccessDenied("Request has expired")
    amz = sorted((k, v.strip()) for k, v in parts.headers.items() if k.startswith("x-amz-"))
    amz_lines = "".join(f"{k}:{v}\n" for k, v in amz)
    head = f"{parts.method}\n{parts.headers.get('content-md5', '')}\n{parts.headers.get('content-type', '')}\n"
    for resource in _v2_resources(parts):
        text = f"{head}{claim.expires}\n{amz_lines}{resource}"
        expected = base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()).decode()
        if hmac.compare_digest(expected, claim.signature):
            return
    raise errors.SignatureDoesNotMatch()
