"""Storage operations: permission checks, limits, storing and reading objects, multipart.

Called by the S3 views (and management commands). The sync functions may query the database,
so views call them with sync_to_async (the request's own thread, whose connections Django
closes); the request body streams from the network to disk in plain worker threads, without
being held in memory.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import F

from audit.services import audit_record
from cloudops import audit_events as events
from cloudops.auditing import Actor
from cloudops.structured_logging import get_logger
from providers.events import upload_event
from providers.models import Job, ProviderConfig
from providers.selectors import job_output_root, output_roots
from storage import checksums, clock, completion, errors, listing, multipart, store
from storage.body import BodyResult, BodySpec, RequestBodyStream, receive_to_file
from storage.credentials import Credential
from storage.paths import UPLOADS_DIR
from storage.preconditions import WritePrecondition

MAX_PART_BYTES = 5 * 1024**3  # S3's own limit per part

logger = get_logger("simpletuner.cloud.storage")


# --- Where buckets live ----------------------------------------------------------------------------


def bucket_roots() -> list[Path]:
    """Every directory that may hold buckets: the default root (buckets of jobs whose provider
    has no row) and each provider's output root."""
    return list(dict.fromkeys([ProviderConfig().output_root, *output_roots().values()]))


def write_root(credential: Credential, bucket: str) -> Path:
    """Where a bucket the credential may write lives: a job's own comes with its credential."""
    if credential.root is not None and bucket in credential.buckets:
        return credential.root
    return job_output_root(bucket)


def _bucket_exists(root: Path, bucket: str) -> bool:
    # A job's bucket exists from submission on, before its first upload.
    return store.bucket_exists(root, bucket) or Job.objects.filter(id=bucket).exists()


# --- Buckets ---------------------------------------------------------------------------------------


def buckets_list(*, credential: Credential) -> list[tuple[str, float]]:
    if not credential.can_list_buckets():
        raise errors.AccessDenied(credential.denied or "This credential may not list buckets.")
    found: dict[str, float] = {}
    for root in bucket_roots():
        for name, created in store.bucket_names(root):
            found.setdefault(name, created)
    for name in credential.buckets:  # a job's own bucket exists before its first upload
        found.setdefault(name, clock.now().timestamp())
    visible = credential.visible_buckets(list(found))
    # A job's bucket was created with the job: a folder's time moves as objects are added, so
    # it is only the creation date of a folder no job owns (written there by other means).
    jobs = Job.objects.filter(id__in=visible).values_list("id", "created_at")
    found.update({job_id: created_at.timestamp() for job_id, created_at in jobs})
    return sorted((name, found[name]) for name in visible)


def bucket_check_readable(*, credential: Credential, bucket: str) -> Path:
    if not credential.can_read(bucket):
        raise errors.AccessDenied(credential.denied or f"This credential may not read bucket {bucket!r}.")
    root = job_output_root(bucket)
    if bucket not in credential.buckets and not _bucket_exists(root, bucket):
        raise errors.NoSuchBucket(BucketName=bucket)
    return root


def bucket_create(*, credential: Credential, bucket: str) -> None:
    """CreateBucket succeeds only for a credential's own bucket (clients often call it first)."""
    credential.check_write(bucket, clock.now())
    (job_output_root(bucket) / bucket).mkdir(parents=True, exist_ok=True)


@dataclass
class Listing:
    page: listing.Page
    objects: list[store.ObjectInfo]
    owner: tuple[str, str] | None = None  # (ID, DisplayName) of every object, when asked


def objects_list(
    *,
    credential: Credential,
    bucket: str,
    prefix: str,
    delimiter: str,
    after: str | None,
    limit: int,
    with_owner: bool = False,
) -> Listing:
    root = bucket_check_readable(credential=credential, bucket=bucket)
    keys = store.walk_keys(root, bucket, prefix)
    page = listing.paginate(keys, prefix=prefix, delimiter=delimiter, after=after, limit=limit)
    owner = bucket_owner(bucket) if with_owner and page.contents else None
    return Listing(page, [store.describe(root, bucket, key, st) for key, st in page.contents], owner)


def bucket_owner(bucket: str) -> tuple[str, str]:
    """The owner S3 lists with each object (ListObjects v1, v2 with FetchOwner): a job's
    bucket is written by the job alone, so the owner is the job (ID: its id) of the user who
    submitted it (DisplayName: their user name). Never the job's access key id."""
    job = Job.objects.select_related("owner").filter(id=bucket).first()
    return (bucket, job.owner.get_username() if job is not None else "")


# --- Objects ---------------------------------------------------------------------------------------


def object_open(*, credential: Credential, bucket: str, key: str) -> tuple[int, store.ObjectInfo]:
    root = bucket_check_readable(credential=credential, bucket=bucket)
    return store.open_object(root, bucket, key)


def object_delete(*, credential: Credential, bucket: str, key: str) -> bool:
    credential.check_write(bucket, clock.now())
    return store.delete_object(job_output_root(bucket), bucket, key)


async def _check_room(root: Path, spec: BodySpec, limit: int) -> None:
    if spec.length > limit:
        raise errors.EntityTooLarge(
            f"Your proposed upload ({spec.length} bytes) exceeds the maximum allowed size ({limit} bytes).",
            ProposedSize=str(spec.length),
            MaxSizeAllowed=str(limit),
        )
    await asyncio.to_thread(store.check_free_space, root, spec.length, settings.SIMPLETUNER_S3_MIN_FREE_BYTES)


async def _receive(root: Path, stream: RequestBodyStream, spec: BodySpec, limit: int) -> tuple[Path, int, BodyResult]:
    """Stream the body into a new temporary file; the caller owns (and must close) the fd."""
    await _check_room(root, spec, limit)
    fd, tmp_path = await asyncio.to_thread(store.temp_file, root)
    try:
        result = await receive_to_file(stream, spec, fd)
    except BaseException:
        os.close(fd)
        store.discard(tmp_path)
        raise
    return tmp_path, fd, result


def _seal(fd: int, attrs: store.ObjectAttrs | None) -> None:
    try:
        if attrs is not None:
            store.set_attrs(fd, attrs)
        if settings.SIMPLETUNER_S3_FSYNC:
            os.fsync(fd)
    finally:
        os.close(fd)


async def object_put(
    *,
    credential: Credential,
    bucket: str,
    key: str,
    stream: RequestBodyStream,
    spec: BodySpec,
    content_type: str,
    metadata: dict[str, str],
    client_ip: str,
    precondition: WritePrecondition | None = None,
) -> tuple[store.ObjectInfo, BodyResult]:
    """Store the body as `bucket/key`; with a precondition, only if it holds (checked before
    the body is read, so a refused create-only write costs no upload, and again atomically
    with the rename: see store.commit)."""
    credential.check_write(bucket, clock.now())
    root = await sync_to_async(write_root)(credential, bucket)
    store.key_segments(key)  # refuse a bad key before reading the body
    check = precondition.check if precondition is not None else None
    if check is not None:
        check(await asyncio.to_thread(store.current, root, bucket, key))
    tmp_path, fd, result = await _receive(root, stream, spec, settings.SIMPLETUNER_S3_MAX_OBJECT_BYTES)
    with store.discarded_on_error(tmp_path):
        attrs = store.ObjectAttrs(f'"{result.md5.hex()}"', content_type, metadata, **_checksum_attrs(result))
        await asyncio.to_thread(_seal, fd, attrs)
        info = await asyncio.to_thread(store.commit, root, bucket, key, tmp_path, check)
    await object_stored(credential=credential, bucket=bucket, info=info, client_ip=client_ip)
    return info, result


def _checksum_attrs(result: BodyResult) -> dict[str, Any]:
    """The checksum the client sent with a single-request upload, kept to return on GET."""
    if result.checksum_algorithm is None or result.checksum is None:
        return {}
    return {"checksums": {result.checksum_algorithm: checksums.encode(result.checksum)}, "checksum_type": "FULL_OBJECT"}


async def object_stored(*, credential: Credential, bucket: str, info: store.ObjectInfo, client_ip: str) -> None:
    """A complete object landed (never called per part): audit it, count it for its job and
    publish an `upload.completed` live event."""
    logger.info(
        "stored %s/%s (%d bytes)",
        bucket,
        info.key,
        info.size,
        extra={"bucket": bucket, "key": info.key, "size": info.size},
    )
    if credential.job_id:
        await sync_to_async(job_upload_progress)(job_id=credential.job_id, size=info.size)
    await sync_to_async(audit_record)(
        event_type=events.STORAGE_UPLOAD,
        actor=Actor(username=credential.username, api_key=credential.api_key_prefix, ip=client_ip),
        target_type="job" if credential.job_id else "bucket",
        target_id=credential.job_id or bucket,
        action="put",
        details={"bucket": bucket, "key": info.key, "size": info.size, "etag": info.etag.strip('"')},
    )
    await upload_event(bucket=bucket, key=info.key, size=info.size)


def job_upload_progress(*, job_id: str, size: int) -> None:
    """Count one stored object for its job (one UPDATE with F(): concurrent uploads add up)."""
    Job.objects.filter(id=job_id).update(
        upload_objects=F("upload_objects") + 1, upload_bytes=F("upload_bytes") + size, last_upload_at=clock.now()
    )


# --- Multipart -------------------------------------------------------------------------------------


CLEANUP_INTERVAL = 3600


def _cleanup_now_and_then(root: Path) -> None:
    """Abandoned uploads also go without cron: the first CreateMultipartUpload of each hour
    (a marker file's time, shared by every process) sweeps the root."""
    marker = root / UPLOADS_DIR / ".last-cleanup"
    try:
        if clock.now().timestamp() - marker.stat().st_mtime < CLEANUP_INTERVAL:
            return
    except FileNotFoundError:
        pass
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    multipart.cleanup(root, older_than=settings.SIMPLETUNER_S3_MULTIPART_TTL_SECONDS)


def multipart_create(
    *,
    credential: Credential,
    bucket: str,
    key: str,
    content_type: str,
    metadata: dict[str, str],
    checksum_algorithm: str = "",
    checksum_type: str = "",
) -> multipart.Upload:
    credential.check_write(bucket, clock.now())
    store.key_segments(key)
    root = write_root(credential, bucket)
    _cleanup_now_and_then(root)
    return multipart.create(
        root,
        bucket=bucket,
        key=key,
        content_type=content_type,
        metadata=metadata,
        initiator=credential.access_key_id,
        checksum_algorithm=checksum_algorithm,
        checksum_type=checksum_type,
    )


def upload_for_writer(credential: Credential, bucket: str, key: str, upload_id: str) -> tuple[Path, multipart.Upload]:
    """The bucket's root and the upload a writer may add to (one root lookup per request)."""
    credential.check_write(bucket, clock.now())
    root = write_root(credential, bucket)
    return root, multipart.load(root, upload_id, bucket, key)


async def multipart_upload_part(
    *,
    credential: Credential,
    bucket: str,
    key: str,
    upload_id: str,
    number: int,
    stream: RequestBodyStream,
    spec: BodySpec,
) -> tuple[str, BodyResult]:
    root, upload = await sync_to_async(upload_for_writer)(credential, bucket, key, upload_id)
    _check_part_checksum(upload, spec)
    limit = min(MAX_PART_BYTES, settings.SIMPLETUNER_S3_MAX_OBJECT_BYTES)
    if spec.length > limit:
        await _check_room(root, spec, limit)  # raises EntityTooLarge
    # Free space, the slot (or a file of its own) and the part's record file: one thread hop.
    fd, offset, record = await asyncio.to_thread(_part_target, root, upload, number, spec.length)
    # No fsync for parts: they are not objects; the assembled object is synced on complete.
    if offset is None:
        try:
            result = await receive_to_file(stream, spec, fd)
        except BaseException:
            store.discard(record)
            raise
        finally:
            os.close(fd)
        return await _store_part(root, upload, number, record, result, None), result
    try:
        try:
            result = await receive_to_file(stream, spec, fd, offset)
        finally:
            os.close(fd)
    except BaseException as error:
        store.discard(record)
        if isinstance(error, Exception):
            # Every write to the slot has ended (receive_to_file waits for them): a retry may
            # take it. Not after a cancellation, which may have left a write running.
            multipart.release_slot(root, upload, number)
        raise
    return await _store_part(root, upload, number, record, result, offset), result


def _part_target(root: Path, upload: multipart.Upload, number: int, size: int) -> tuple[int, int | None, Path]:
    """Where a part's body goes: (a descriptor, its offset in the slots file or None for a file
    of its own, the part's record: that file, or an empty one saying where the slot is)."""
    store.check_free_space(root, size, settings.SIMPLETUNER_S3_MIN_FREE_BYTES)
    max_object = settings.SIMPLETUNER_S3_MAX_OBJECT_BYTES
    claim = multipart.claim_slot(root, upload, number, size, max_object)
    if claim is None:
        fd, tmp_path = store.temp_file(root)
        return fd, None, tmp_path
    try:
        record_fd, record = store.temp_file(root)
    except BaseException:
        os.close(claim[0])
        multipart.release_slot(root, upload, number)
        raise
    os.close(record_fd)
    return claim[0], claim[1], record


async def _store_part(
    root: Path, upload: multipart.Upload, number: int, tmp_path: Path, result: BodyResult, slot: int | None
) -> str:
    checksum = (result.checksum_algorithm, result.checksum) if result.checksum_algorithm and result.checksum else None
    place = (slot, result.size) if slot is not None else None
    store_part = partial(multipart.store_part, root, upload, number, tmp_path, result.md5, checksum, place)
    with store.discarded_on_error(tmp_path):
        return await multipart.under_lock(root, upload, store_part, exclusive=False)


def _check_part_checksum(upload: multipart.Upload, spec: BodySpec) -> None:
    """An upload created with a checksum algorithm takes only parts that carry it (as S3),
    since the object's checksum is built from theirs."""
    wanted = upload.checksum_algorithm
    if wanted and spec.checksum_algorithm != wanted:
        raise errors.InvalidRequest(
            f"The upload was created with the {wanted.upper()} checksum algorithm: each part must send "
            f"x-amz-checksum-{wanted} (header or trailer)."
        )


@dataclass(frozen=True)
class PendingCompletion:
    """A CompleteMultipartUpload that passed the checks answered with a plain 4xx."""

    root: Path
    upload: multipart.Upload
    checks: completion.Checks


def multipart_complete_check(
    *,
    credential: Credential,
    bucket: str,
    key: str,
    upload_id: str,
    listed: list[tuple[int, str]],
    precondition: WritePrecondition | None = None,
    claims: checksums.Claimed | None = None,
    expected_size: int | None = None,
) -> PendingCompletion | store.ObjectInfo:
    """Everything Complete can refuse before it starts answering: the credential, the upload,
    the listed parts and their total against `expected_size` (x-amz-mp-object-size), free
    space, a key that is a folder, a precondition (If-None-Match, If-Match).
    `multipart_complete` checks again under the upload's lock (parts, folders and the object
    may change meanwhile). A retry of a Complete that succeeded gets its object at
    once, whatever its precondition: that object is the one this upload wrote."""
    credential.check_write(bucket, clock.now())
    root = write_root(credential, bucket)
    previous = completion.completed_before(root, upload_id, bucket, key)
    if previous is not None:
        return previous
    upload = multipart.load(root, upload_id, bucket, key)
    checks = completion.Checks(
        max_object_bytes=settings.SIMPLETUNER_S3_MAX_OBJECT_BYTES,
        min_free=settings.SIMPLETUNER_S3_MIN_FREE_BYTES,
        precondition=precondition,
        claims=claims,
        expected_size=expected_size,
    )
    completion.check_complete(root, upload, listed, checks)
    return PendingCompletion(root, upload, checks)


async def multipart_complete(
    *, credential: Credential, bucket: str, pending: PendingCompletion, listed: list[tuple[int, str]], client_ip: str
) -> store.ObjectInfo:
    """Assemble the upload, or wait for the Complete already assembling it (a client's retry,
    perhaps in another process) and answer with its object; see storage.completion.

    Only the Complete that assembled the object records it (audit, job progress, event).
    Accepted: a crash after the upload is closed and before that record loses the record; the
    object is whole and visible, and a retry answers with it.
    """
    root, upload = pending.root, pending.upload
    assemble = partial(completion.complete, root, upload, listed, pending.checks)
    try:
        info = await multipart.under_lock(root, upload, assemble, exclusive=True)
    except errors.NoSuchUpload:
        previous = await asyncio.to_thread(
            completion.completed_before, root, upload.upload_id, upload.bucket, upload.key
        )
        if previous is None:
            raise
        return previous
    await object_stored(credential=credential, bucket=bucket, info=info, client_ip=client_ip)
    return info


async def multipart_abort(*, credential: Credential, bucket: str, key: str, upload_id: str) -> None:
    """Remove the upload, after a Complete of it that is running (then NoSuchUpload)."""
    root, upload = await sync_to_async(upload_for_writer)(credential, bucket, key, upload_id)
    await multipart.under_lock(root, upload, partial(multipart.abort, root, upload), exclusive=True)


def multipart_parts(
    *, credential: Credential, bucket: str, key: str, upload_id: str
) -> tuple[multipart.Upload, list[multipart.Part]]:
    root = bucket_check_readable(credential=credential, bucket=bucket)
    upload = multipart.load(root, upload_id, bucket, key)
    return upload, multipart.parts(root, upload)


def storage_cleanup(*, older_than: float | None = None) -> tuple[int, int]:
    """Remove abandoned multipart uploads and stray temporary files from every output root."""
    ttl = settings.SIMPLETUNER_S3_MULTIPART_TTL_SECONDS if older_than is None else older_than
    uploads = temps = 0
    for root in bucket_roots():
        removed_uploads, removed_temps = multipart.cleanup(root, older_than=ttl)
        uploads += removed_uploads
        temps += removed_temps
    return uploads, temps
