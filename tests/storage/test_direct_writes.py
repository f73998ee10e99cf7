"""storage/direct.py: upload writes around the page cache (O_DIRECT) where alignment allows.

Every arrangement must leave the file holding exactly the bytes written, and the descriptor's
flags as they were. Whether a range really went direct is read from the page cache: mincore()
on a fresh mapping of the file says which of its pages are cached, and a direct write leaves
none (ext4 and XFS invalidate the range), while a buffered one leaves them dirty in the cache,
where they stay at least until written back. Then the S3 endpoint end to end with boto3: a
multipart upload of unaligned and of aligned parts, with SIMPLETUNER_S3_DIRECT_WRITES on and off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import mmap
import os
import resource
import subprocess
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from storage import direct
from tests.processes import in_forked_child
from tests.storage.conftest import bucket_of, client_for

KiB = 1024
MiB = 1024 * KiB
PAGE = mmap.PAGESIZE

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
MAP_FAILED = ctypes.c_void_p(-1).value


def cached_pages(path: Path) -> list[bool]:
    """For each page of the file, whether it is in the page cache (mincore of a mapping that
    is never touched, so looking does not read anything in)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return []
        address = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, MAP_FAILED):
            raise OSError(ctypes.get_errno(), "mmap")
        try:
            vector = (ctypes.c_ubyte * ((size + PAGE - 1) // PAGE))()
            if _libc.mincore(address, size, vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
            return [bool(byte & 1) for byte in vector]
        finally:
            _libc.munmap(address, size)
    finally:
        os.close(fd)


def _file_system(path: Path) -> str:
    return subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True).stdout.strip()


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "body.bin"


@pytest.fixture
def cache_visible(tmp_path: Path) -> None:
    """The page-cache checks hold on file systems that drop cached pages under a direct write."""
    kind = _file_system(tmp_path)
    if kind not in ("ext2/ext3", "ext4", "xfs"):
        pytest.skip(f"page-cache residency after O_DIRECT is only checked on ext4/xfs, not {kind!r}")


def _write(path: Path, data: Any, offset: int, *, direct_io: bool = True) -> int:
    """direct.write into `path` (created), returning the descriptor's flags before and after."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        direct.write(fd, data, offset, direct=direct_io)
        assert fcntl.fcntl(fd, fcntl.F_GETFL) == flags
        assert not flags & os.O_DIRECT
        return flags
    finally:
        os.close(fd)


def _filled(size: int, seed: int = 0) -> memoryview:
    buffer = direct.aligned_buffer(size)
    buffer[:] = hashlib.shake_256(seed.to_bytes(4, "little")).digest(size) if size else b""
    return buffer


def _pages(start: int, end: int) -> range:
    return range(start // PAGE, (end + PAGE - 1) // PAGE)


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 2 * MiB, 2 * MiB + 1000])
def test_aligned_buffer_starts_at_a_block_and_is_writable(size) -> None:
    buffer = direct.aligned_buffer(size)
    assert len(buffer) == size and not buffer.readonly and buffer.format == "B"
    if size:
        assert ctypes.addressof(ctypes.c_char.from_buffer(buffer)) % direct.ALIGN == 0
        buffer[-1] = 7
        assert buffer[-1] == 7


# --- what lands in the file, and what went around the page cache ---------------------------


def test_aligned_data_at_an_aligned_offset_goes_direct(target, cache_visible) -> None:
    data = _filled(1 * MiB)
    _write(target, data, 0)
    assert not any(cached_pages(target))  # before reading it back caches it
    assert target.read_bytes() == bytes(data)


def test_aligned_blocks_bypass_the_cache_and_an_unaligned_tail_does_not(target, cache_visible) -> None:
    head, body = _filled(8192, seed=1), _filled(1 * MiB + 1000, seed=2)
    _write(target, head, 0, direct_io=False)  # buffered: the control that mincore sees pages
    _write(target, body, 8192)
    cached = cached_pages(target)
    assert all(cached[page] for page in _pages(0, 8192))
    end_of_blocks = 8192 + 1 * MiB
    assert not any(cached[page] for page in _pages(8192, end_of_blocks)), "the aligned blocks were cached"
    assert cached[end_of_blocks // PAGE], "the unaligned tail should have gone through the cache"
    assert target.read_bytes() == bytes(head) + bytes(body)


def test_an_unaligned_offset_goes_through_the_cache(target, cache_visible) -> None:
    data = _filled(256 * KiB, seed=3)
    _write(target, data, 100)
    assert all(cached_pages(target))
    assert target.read_bytes() == bytes(100) + bytes(data)


def test_misaligned_memory_goes_through_the_cache(target, cache_visible) -> None:
    raw = _filled(256 * KiB + 1, seed=4)
    data = raw[1:]  # one byte past a block boundary
    _write(target, data, 0)
    assert all(cached_pages(target))
    assert target.read_bytes() == bytes(data)


def test_direct_off_goes_through_the_cache(target, cache_visible) -> None:
    data = _filled(256 * KiB, seed=5)
    _write(target, data, 0, direct_io=False)
    assert all(cached_pages(target))
    assert target.read_bytes() == bytes(data)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda b: bytes(b), id="bytes"),
        pytest.param(lambda b: memoryview(bytes(b)), id="readonly-memoryview"),
        pytest.param(lambda b: memoryview(bytes(b)).toreadonly(), id="toreadonly"),
    ],
)
def test_read_only_input_lands_whole(target, make) -> None:
    data = make(_filled(64 * KiB + 10, seed=6))
    _write(target, data, 0)
    _write(target, data, 4096)
    assert target.read_bytes() == bytes(data)[:4096] + bytes(data)


@pytest.mark.parametrize(
    ("size", "offset", "skew"),
    [
        (4096, 0, 0),
        (4096 * 3, 4096 * 5, 0),
        (4095, 0, 0),
        (4097, 8192, 0),
        (2 * MiB + 1000, 2 * MiB, 0),
        (2 * MiB, 1, 0),
        (2 * MiB, 4096, 1),
        (2 * MiB + 3, 4096, 512),
        (0, 4096, 0),
    ],
)
def test_the_file_holds_what_was_written(target, size, offset, skew) -> None:
    raw = _filled(size + skew, seed=size + offset + skew)
    data = raw[skew:]
    before = _filled(offset + size + 8192, seed=99)  # what was there, around the write
    _write(target, before, 0, direct_io=False)
    _write(target, data, offset)
    expected = bytes(before[:offset]) + bytes(data) + bytes(before[offset + size :])
    assert target.read_bytes() == expected


def test_a_direct_write_over_cached_pages_replaces_them(target) -> None:
    old, new = _filled(64 * KiB, seed=7), _filled(64 * KiB, seed=8)
    _write(target, old, 0, direct_io=False)
    assert target.read_bytes() == bytes(old)  # now cached
    _write(target, new, 0)
    assert target.read_bytes() == bytes(new)
    with target.open("rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        assert mapped[:] == bytes(new)


# --- the descriptor's flags ----------------------------------------------------------------


def test_flags_set_by_the_caller_are_kept(target) -> None:
    fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_NOATIME, 0o600)
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        assert flags & os.O_NONBLOCK and flags & os.O_NOATIME
        data = _filled(64 * KiB + 5, seed=9)
        direct.write(fd, data, 0, direct=True)
        assert fcntl.fcntl(fd, fcntl.F_GETFL) == flags
    finally:
        os.close(fd)
    assert target.read_bytes() == bytes(data)


def test_a_descriptor_that_refuses_o_direct_is_written_through_the_cache_and_left_as_it_was() -> None:
    """/dev/null takes no O_DIRECT (fcntl answers EINVAL): the fallback writes everything."""
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        with pytest.raises(OSError) as refused:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT)
        assert refused.value.errno == errno.EINVAL
        assert fcntl.fcntl(fd, fcntl.F_GETFL) == flags
        direct.write(fd, _filled(64 * KiB + 1), 0, direct=True)
        assert fcntl.fcntl(fd, fcntl.F_GETFL) == flags
    finally:
        os.close(fd)


def test_a_failed_direct_write_raises_and_leaves_the_flags(target) -> None:
    """An error that is not EINVAL (here EFBIG past RLIMIT_FSIZE, in a child) is the caller's,
    and the descriptor is still restored."""

    def write_past_the_limit() -> bytes:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 * MiB, resource.RLIM_INFINITY))
        fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o600)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        try:
            direct.write(fd, _filled(2 * MiB), 0, direct=True)
            answer = b"no error"
        except OSError as error:
            answer = errno.errorcode.get(error.errno or 0, "?").encode()
        if fcntl.fcntl(fd, fcntl.F_GETFL) != flags:
            answer += b" flags changed"
        return answer

    answer = in_forked_child(write_past_the_limit)
    assert answer == b"EFBIG"


# --- end to end: multipart uploads through the S3 endpoint ---------------------------------


def _etag(*bodies: bytes) -> str:
    return f'"{hashlib.md5(b"".join(hashlib.md5(b).digest() for b in bodies)).hexdigest()}-{len(bodies)}"'


def _bodies(*sizes: int) -> list[bytes]:
    return [hashlib.shake_256(bytes([n])).digest(size) for n, size in enumerate(sizes)]


UNALIGNED = (5 * MiB + 1000, 5 * MiB + 1000, 5 * MiB + 1000, 12_345)
ALIGNED = (5 * MiB, 5 * MiB, 3 * 4096)


def _multipart(client: Any, bucket: str, key: str, bodies: list[bytes]) -> Path:
    """Upload `bodies` as the parts of `key`, one after another; return the object's file."""
    from django.conf import settings

    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for number, body in enumerate(bodies, 1):
        answer = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
        assert answer["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    done = client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    assert done["ETag"] == _etag(*bodies)
    return Path(settings.OUTPUTS_DIR) / bucket / key


def _check_object(client: Any, bucket: str, key: str, stored: Path, bodies: list[bytes]) -> None:
    whole = b"".join(bodies)
    assert stored.read_bytes() == whole
    answer = client.get_object(Bucket=bucket, Key=key)
    assert answer["Body"].read() == whole
    assert answer["ETag"] == _etag(*bodies)


@pytest.fixture
def uploader(s3, writer) -> Callable[[Any], tuple[Any, str]]:
    def make(endpoint: Any) -> tuple[Any, str]:
        credential = writer()
        return client_for(s3, endpoint, credential), bucket_of(credential)

    return make


@pytest.mark.parametrize("sizes", [UNALIGNED, ALIGNED], ids=["unaligned-parts", "aligned-parts"])
@pytest.mark.parametrize("direct_writes", [True, False], ids=["direct", "buffered"])
def test_multipart_upload_lands_whole_with_its_etag(endpoint, uploader, settings, sizes, direct_writes) -> None:
    settings.SIMPLETUNER_S3_DIRECT_WRITES = direct_writes
    client, bucket = uploader(endpoint)
    bodies = _bodies(*sizes)
    stored = _multipart(client, bucket, "ckpt/model.safetensors", bodies)
    _check_object(client, bucket, "ckpt/model.safetensors", stored, bodies)


@pytest.mark.parametrize("direct_writes", [True, False], ids=["direct", "buffered"])
def test_the_setting_decides_whether_parts_pass_the_page_cache(
    http_server, uploader, settings, cache_visible, direct_writes
) -> None:
    """Aligned parts kept in place (renamed into the object, not copied): with direct writes
    none of the object's pages is cached after the upload, without them all are."""
    settings.SIMPLETUNER_S3_DIRECT_WRITES = direct_writes
    client, bucket = uploader(http_server)
    bodies = _bodies(*ALIGNED)
    stored = _multipart(client, bucket, "aligned.bin", bodies)
    cached = cached_pages(stored)  # before anything reads the object
    assert len(cached) == sum(ALIGNED) // PAGE
    if direct_writes:
        assert not any(cached), f"{sum(cached)} of {len(cached)} pages cached"
    else:
        assert all(cached), f"{len(cached) - sum(cached)} of {len(cached)} pages not cached"
    _check_object(client, bucket, "aligned.bin", stored, bodies)


def test_concurrent_parts_of_an_unaligned_size_through_upload_fileobj(endpoint, uploader) -> None:
    """boto3's managed transfer sends 4 parts at once: the server's MD5 lanes batch them."""
    client, bucket = uploader(endpoint)
    chunk = 5 * MiB + 1000
    data = hashlib.shake_256(b"fileobj").digest(4 * chunk + 4321)
    config = TransferConfig(multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=4)
    client.upload_fileobj(BytesIO(data), bucket, "concurrent.bin", Config=config)
    parts = [data[at : at + chunk] for at in range(0, len(data), chunk)]
    assert len(parts) == 5
    head = client.head_object(Bucket=bucket, Key="concurrent.bin")
    assert head["ETag"] == _etag(*parts) and head["ContentLength"] == len(data)
    assert client.get_object(Bucket=bucket, Key="concurrent.bin")["Body"].read() == data
