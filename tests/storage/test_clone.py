"""storage.clone: ranges copied by the kernel, and by the plain loop where the kernel cannot
(a pipe as destination: copy_file_range refuses it, as it does across some filesystems)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from storage.clone import copy_range, digest_range, reflink


def _source(tmp_path: Path, size: int) -> tuple[int, bytes]:
    data = os.urandom(size)
    (tmp_path / "src").write_bytes(data)
    return os.open(tmp_path / "src", os.O_RDONLY), data


def test_it_copies_a_range_after_what_the_destination_holds(tmp_path: Path) -> None:
    src, data = _source(tmp_path, 3 * 1024 * 1024 + 17)
    dst = os.open(tmp_path / "dst", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        copy_range(src, dst, 10, 1000)
        copy_range(src, dst, 2 * 1024 * 1024, 1024 * 1024 + 17)
    finally:
        os.close(dst)
        os.close(src)
    assert (tmp_path / "dst").read_bytes() == data[10:1010] + data[2 * 1024 * 1024 :]


def test_it_falls_back_to_a_plain_copy_into_a_pipe(tmp_path: Path) -> None:
    src, data = _source(tmp_path, 1024 * 1024 + 5)
    read_end, write_end = os.pipe()
    received = bytearray()

    def drain() -> None:
        while chunk := os.read(read_end, 65536):
            received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        copy_range(src, write_end, 3, len(data) - 3)
    finally:
        os.close(write_end)
        reader.join(timeout=30)
        os.close(read_end)
        os.close(src)
    assert bytes(received) == data[3:]


def test_a_source_shorter_than_asked_is_an_error_not_a_short_copy(tmp_path: Path) -> None:
    src, data = _source(tmp_path, 100)
    dst = os.open(tmp_path / "dst", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError):
            copy_range(src, dst, 50, 100)
    finally:
        os.close(dst)
        os.close(src)


def test_a_reflink_is_the_whole_file_or_nothing(tmp_path: Path) -> None:
    src, data = _source(tmp_path, 70_000)
    dst = os.open(tmp_path / "dst", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        cloned = reflink(src, dst)
    finally:
        os.close(dst)
    md5 = hashlib.md5()
    digest_range(src, 0, len(data), [md5])
    os.close(src)
    # ext4 cannot clone (False, nothing written); btrfs or XFS can (the same bytes).
    assert (tmp_path / "dst").read_bytes() == (data if cloned else b"")
    assert md5.digest() == hashlib.md5(data).digest()
