"""The S3 endpoint: path-style `/api/cloud/storage[/{bucket}[/{key}]]`, plain async Django views.

Each view authenticates, picks the S3 operation from method and query, calls one service
function and renders S3 XML or headers. Errors are S3 XML documents clients understand.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from cloudops.net import client_ip
from cloudops.structured_logging import get_logger
from storage import checksums, copy, documents, errors, keepalive, listing, multipart, services, xml
from storage.auth import Authenticated, authenticate, request_parts, request_path
from storage.body import BodyResult, ClientDisconnected, RequestBodyStream
from storage.downloads import READ_CHUNK, FileChunks, object_headers
from storage.headers import check_write_headers
from storage.mount import BODY_SCOPE_KEY, STORAGE_MOUNT, client_path
from storage.preconditions import write_precondition
from storage.requests import (
    body_spec,
    content_type,
    mp_object_size,
    not_modified,
    parse_range,
    select_part,
    stored_checksums,
    upload_checksum,
    user_metadata,
)
from storage.store import ObjectInfo

# While a Complete works, a space this often keeps the connection alive (botocore's read
# timeout is 60 s; S3 too sends whitespace while it assembles).
SMALL_BODY_LIMIT = 4 * 1024 * 1024  # CompleteMultipartUpload / DeleteObjects documents
DRAIN_LIMIT = 1024 * 1024
# Sub-resources of buckets and objects this endpoint does not implement (answered NotImplemented).
UNSUPPORTED = frozenset(
    [
        "acl",
        "policy",
        "cors",
        "lifecycle",
        "versioning",
        "versions",
        "website",
        "tagging",
        "logging",
        "notification",
        "replication",
        "encryption",
        "object-lock",
        "retention",
        "legal-hold",
        "torrent",
        "restore",
        "select",
        "analytics",
        "metrics",
        "inventory",
        "accelerate",
        "requestPayment",
        "ownershipControls",
        "publicAccessBlock",
        "intelligent-tiering",
        "attributes",
    ]
)

View = Callable[..., Awaitable[HttpResponseBase]]

logger = get_logger("simpletuner.cloud.storage")


class S3Context:
    """One request's parsed parts, identity and body stream."""

    def __init__(self, request: HttpRequest, auth: Authenticated, path: str) -> None:
        self.request = request
        self.auth = auth
        self.path = path  # strictly decoded (storage.auth.request_path)
        self.credential = auth.credential
        parts = request_parts(request)
        self.headers = parts.headers
        self.query = dict(parts.query)
        self.stream: RequestBodyStream = request.scope.get(BODY_SCOPE_KEY) or _buffered(request)  # type: ignore[attr-defined]
        self.client_ip = client_ip(request)


def _buffered(request: HttpRequest) -> RequestBodyStream:
    """A stream over a body Django already read (its test client, or Django's stock ASGI
    handler, which spools bodies to a temporary file), read in chunks, never whole."""

    async def receive() -> dict[str, Any]:
        chunk = await asyncio.to_thread(request.read, READ_CHUNK)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunk)}

    return RequestBodyStream(receive)


def xml_response(body: bytes, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="application/xml")


def error_response(request: HttpRequest, error: errors.S3Error) -> HttpResponse:
    body = (
        b""
        if request.method == "HEAD"
        else xml.error_document(error, resource=request.path, request_id=xml.request_id(request))
    )
    response = xml_response(body, error.status)
    if request.method == "HEAD":
        response["Content-Length"] = "0"
    for name, value in error.headers.items():
        response[name] = value
    _log_client_error(request, error, response)
    return response


def _log_client_error(request: HttpRequest, error: errors.S3Error, response: HttpResponse) -> None:
    """A client's mistake (4xx) or a feature this endpoint lacks (501) is not a server error:
    the access log has its line, and a 501 gets one INFO line naming what was asked for.
    Django would log every 5xx at ERROR (an rclone sync would log several per file); a 500
    or 507 still is, since the operator must act on those."""
    if error.status >= 500 and error.status != 501:
        return
    response._has_been_logged = True  # type: ignore[attr-defined]  # read by django.utils.log.log_response
    if error.status == 501:
        logger.info("not implemented: %s %s: %s", request.method, request.path, error.message)


async def _settle_body(request: HttpRequest, response: HttpResponse) -> None:
    """An error answered before the body was read: keep the connection usable if cheap.

    A client waiting on `Expect: 100-continue` never sends the body; a small body is drained;
    for a big one the connection is closed, as S3 does.
    """
    stream = request.scope.get(BODY_SCOPE_KEY) if hasattr(request, "scope") else None  # type: ignore[attr-defined]
    if stream is None or stream.consumed:
        return
    if request.headers.get("Expect", "").lower() == "100-continue":
        response["Connection"] = "close"
        return
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        length = DRAIN_LIMIT + 1
    if length > DRAIN_LIMIT or "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        response["Connection"] = "close"
        return
    try:
        async for _ in stream.chunks():
            pass
    except ClientDisconnected:
        pass


def s3_view(view: View) -> View:
    @csrf_exempt
    @wraps(view)
    async def wrapper(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
        try:
            _refuse_browser_post(request, kwargs)
            path = request_path(request)
            auth = await authenticate(request)
            response = await view(S3Context(request, auth, path), **kwargs)
        except errors.S3Error as error:
            response = error_response(request, error)
            await _settle_body(request, response)
        except ClientDisconnected:
            response = HttpResponse(status=400)  # nobody is listening any more
        response["x-amz-request-id"] = xml.request_id(request)
        return response

    return wrapper


def _refuse_browser_post(request: HttpRequest, kwargs: dict[str, Any]) -> None:
    """A browser-form upload (presigned POST) carries its signature in the form, so it would
    fail authentication with a confusing AccessDenied: say what is not supported instead."""
    form = request.headers.get("Content-Type", "").lower().startswith("multipart/form-data")
    if request.method == "POST" and form and "key" not in kwargs and "bucket" in kwargs:
        raise errors.NotImplementedError_(
            "Browser-based uploads (POST with an HTML form, e.g. boto3 generate_presigned_post) are not "
            "supported by this endpoint: upload with PUT (a presigned PUT URL, generate_presigned_url('put_object'))."
        )


def _unsupported(query: dict[str, str]) -> None:
    found = UNSUPPORTED.intersection(query)
    if found:
        raise errors.NotImplementedError_(f"The {sorted(found)[0]!r} sub-resource is not implemented by this endpoint.")


# --- Service and buckets -----------------------------------------------------------------------------


@s3_view
async def service(ctx: S3Context) -> HttpResponse:
    if ctx.request.method not in ("GET", "HEAD"):
        raise errors.MethodNotAllowed()
    buckets = await sync_to_async(services.buckets_list)(credential=ctx.credential)
    return xml_response(documents.buckets(ctx.credential, buckets))


@s3_view
async def bucket(ctx: S3Context, bucket: str) -> HttpResponse:
    method, query = ctx.request.method, ctx.query
    _unsupported(query)
    if method == "GET" and "location" in query:
        await sync_to_async(services.bucket_check_readable)(credential=ctx.credential, bucket=bucket)
        return xml_response(xml.document("LocationConstraint", []))
    if method == "GET" and "uploads" in query:
        raise errors.NotImplementedError_("ListMultipartUploads is not implemented by this endpoint.")
    if method == "GET":
        return await _list_objects(ctx, bucket)
    if method == "HEAD":
        await sync_to_async(services.bucket_check_readable)(credential=ctx.credential, bucket=bucket)
        response = HttpResponse(status=200)
        response["Content-Length"] = "0"
        return response
    if method == "PUT":
        await sync_to_async(services.bucket_create)(credential=ctx.credential, bucket=bucket)
        response = HttpResponse(status=200)
        response["Location"] = f"/{bucket}"
        return response
    if method == "POST" and "delete" in query:
        return await _delete_objects(ctx, bucket)
    raise errors.MethodNotAllowed()


async def _list_objects(ctx: S3Context, bucket: str) -> HttpResponse:
    query = ctx.query
    v2 = query.get("list-type") == "2"
    encoding = query.get("encoding-type")
    if encoding not in (None, "url"):
        raise errors.InvalidArgument("Invalid Encoding Method specified in Request", ArgumentName="encoding-type")
    prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
    limit = listing.max_keys(query.get("max-keys"))
    if v2:
        token = query.get("continuation-token")
        after = listing.decode_token(token) if token else query.get("start-after") or None
    else:
        after = query.get("marker") or None
    result = await sync_to_async(services.objects_list)(
        credential=ctx.credential,
        bucket=bucket,
        prefix=prefix,
        delimiter=delimiter,
        after=after,
        limit=limit,
        with_owner=not v2 or query.get("fetch-owner", "").lower() == "true",
    )
    body = documents.bucket_listing(bucket, query, result, v2=v2, encode=encoding == "url", limit=limit)
    return xml_response(body)


async def _delete_objects(ctx: S3Context, bucket: str) -> HttpResponse:
    keys, quiet = xml.parse_delete(await ctx.stream.read_all(SMALL_BODY_LIMIT))
    results: list[xml.Child] = []
    for key in keys:
        try:
            await sync_to_async(services.object_delete)(credential=ctx.credential, bucket=bucket, key=key)
            if not quiet:
                results.append(("Deleted", [("Key", key)]))
        except errors.S3Error as error:
            results.append(("Error", [("Key", key), ("Code", error.code), ("Message", error.message)]))
    return xml_response(xml.document("DeleteResult", results))


# --- Objects ----------------------------------------------------------------------------------------


@s3_view
async def object_(ctx: S3Context, bucket: str, key: str) -> HttpResponseBase:
    # The key comes from the strictly decoded path: Django's `key` has invalid UTF-8 folded
    # into U+FFFD, which would make `k%FF`, `k%FE` and `k%EF%BF%BD` one object.
    key = ctx.path.partition(f"{STORAGE_MOUNT}/{bucket}/")[2]
    method, query = ctx.request.method, ctx.query
    _unsupported(query)
    if method == "PUT" and copy.SOURCE_HEADER in ctx.headers:
        return await copy.copy_request(ctx, bucket, key)
    handler = _OBJECT_OPERATIONS.get((method or "", _multipart_mode(query)))
    if handler is None:
        raise errors.MethodNotAllowed()
    return await handler(ctx, bucket, key)


def _multipart_mode(query: dict[str, str]) -> str:
    if "uploads" in query:
        return "uploads"
    if "uploadId" in query:
        return "part" if "partNumber" in query else "upload"
    return ""


async def _get_object(ctx: S3Context, bucket: str, key: str) -> HttpResponseBase:
    fd, info = await sync_to_async(services.object_open)(credential=ctx.credential, bucket=bucket, key=key)
    try:
        unchanged = not_modified(ctx.headers, info)
        selected, headers = None if unchanged else _selection(ctx, info), object_headers(info, ctx.query)
    except BaseException:
        os.close(fd)
        raise
    if selected is not None:
        first, last = selected
        headers["Content-Range"] = f"bytes {first}-{last}/{info.size}"
    else:
        first, last = 0, info.size - 1
    if selected is None and not unchanged:  # the checksums describe the whole object only
        headers.update(stored_checksums(ctx.headers, info))
    status = 304 if unchanged else 206 if selected else 200
    if unchanged or ctx.request.method == "HEAD":
        os.close(fd)
        response: HttpResponseBase = HttpResponse(status=status)
        headers["Content-Length"] = "0" if unchanged else str(last - first + 1)
    else:
        # Django closes the iterator (and so the file) when the response is closed.
        response = StreamingHttpResponse(FileChunks(fd, first, last - first + 1), status=status)
        headers["Content-Length"] = str(last - first + 1)
    for name, value in headers.items():
        response[name] = value
    if "partNumber" in ctx.query and info.parts:
        response["x-amz-mp-parts-count"] = str(sum(runs for _, runs in info.parts))
    return response


def _selection(ctx: S3Context, info: ObjectInfo) -> tuple[int, int] | None:
    """The bytes asked for: one part (`?partNumber=`), a Range, or None for all of them."""
    if "partNumber" in ctx.query:
        return select_part(ctx.query["partNumber"], ctx.headers, info)
    return parse_range(ctx.headers.get("range"), info.size)


def _checksum_headers(result: BodyResult) -> dict[str, str]:
    if result.checksum_algorithm and result.checksum is not None:
        return {f"x-amz-checksum-{result.checksum_algorithm}": base64.b64encode(result.checksum).decode()}
    return {}


async def _put_object(ctx: S3Context, bucket: str, key: str) -> HttpResponse:
    check_write_headers(ctx.headers)
    info, result = await services.object_put(
        credential=ctx.credential,
        bucket=bucket,
        key=key,
        stream=ctx.stream,
        spec=body_spec(ctx.headers, ctx.auth),
        content_type=content_type(ctx.headers),
        metadata=user_metadata(ctx.headers),
        client_ip=ctx.client_ip,
        precondition=write_precondition(ctx.headers, key),
    )
    response = HttpResponse(status=200)
    response["ETag"] = info.etag
    response["Content-Length"] = "0"
    for name, value in _checksum_headers(result).items():
        response[name] = value
    return response


async def _delete_object(ctx: S3Context, bucket: str, key: str) -> HttpResponse:
    await sync_to_async(services.object_delete)(credential=ctx.credential, bucket=bucket, key=key)
    return HttpResponse(status=204)


async def _create_upload(ctx: S3Context, bucket: str, key: str) -> HttpResponse:
    check_write_headers(ctx.headers)
    algorithm, kind = upload_checksum(ctx.headers)
    upload = await sync_to_async(services.multipart_create)(
        credential=ctx.credential,
        bucket=bucket,
        key=key,
        content_type=content_type(ctx.headers),
        metadata=user_metadata(ctx.headers),
        checksum_algorithm=algorithm,
        checksum_type=kind,
    )
    body = xml.document(
        "InitiateMultipartUploadResult", [("Bucket", bucket), ("Key", key), ("UploadId", upload.upload_id)]
    )
    response = xml_response(body)
    if algorithm:
        response["x-amz-checksum-algorithm"], response["x-amz-checksum-type"] = algorithm.upper(), kind
    return response


async def _upload_part(ctx: S3Context, bucket: str, key: str) -> HttpResponse:
    etag, result = await services.multipart_upload_part(
        credential=ctx.credential,
        bucket=bucket,
        key=key,
        upload_id=ctx.query["uploadId"],
        number=multipart.part_number(ctx.query.get("partNumber")),
        stream=ctx.stream,
        spec=body_spec(ctx.headers, ctx.auth),
    )
    response = HttpResponse(status=200)
    response["ETag"] = etag
    response["Content-Length"] = "0"
    for name, value in _checksum_headers(result).items():
        response[name] = value
    return response


async def _complete_upload(ctx: S3Context, bucket: str, key: str) -> HttpResponseBase:
    precondition = write_precondition(ctx.headers, key)
    expected_size = mp_object_size(ctx.headers)
    body = await ctx.stream.read_all(SMALL_BODY_LIMIT)
    listed = xml.parse_complete(body)
    checked = await sync_to_async(services.multipart_complete_check)(
        credential=ctx.credential,
        bucket=bucket,
        key=key,
        upload_id=ctx.query["uploadId"],
        listed=listed,
        precondition=precondition,
        claims=checksums.claimed(ctx.headers, xml.parse_complete_checksums(body)),
        expected_size=expected_size,
    )
    location = ctx.request.build_absolute_uri(client_path(ctx.request))

    def result(info: ObjectInfo) -> bytes:
        return documents.complete_result(location, bucket, key, info)

    if isinstance(checked, ObjectInfo):  # a retry of a Complete that succeeded
        return xml_response(result(checked))
    # Started here, not in the response: it finishes (and is recorded) even if nobody reads.
    task = keepalive.start(
        services.multipart_complete(
            credential=ctx.credential, bucket=bucket, pending=checked, listed=listed, client_ip=ctx.client_ip
        )
    )
    return StreamingHttpResponse(keepalive.kept_alive(ctx.request, task, result), content_type="application/xml")


async def _abort_upload(ctx: S3Context, bucket: str, key: str) -> HttpResponse:
    await services.multipart_abort(credential=ctx.credential, bucket=bucket, key=key, upload_id=ctx.query["uploadId"])
    return HttpResponse(status=204)


async def _list_parts(ctx: S3Context, bucket: str, key: str) -> HttpResponse:
    upload, parts = await sync_to_async(services.multipart_parts)(
        credential=ctx.credential, bucket=bucket, key=key, upload_id=ctx.query["uploadId"]
    )
    return xml_response(documents.list_parts(bucket, key, upload, parts, ctx.query))


_OBJECT_OPERATIONS: dict[tuple[str, str], Callable[[S3Context, str, str], Awaitable[HttpResponseBase]]] = {
    ("GET", ""): _get_object,
    ("HEAD", ""): _get_object,
    ("PUT", ""): _put_object,
    ("DELETE", ""): _delete_object,
    ("POST", "uploads"): _create_upload,
    ("PUT", "part"): _upload_part,
    ("POST", "upload"): _complete_upload,
    ("DELETE", "upload"): _abort_upload,
    ("GET", "upload"): _list_parts,
}
