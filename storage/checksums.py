"""Payload checksums S3 clients send: CRC32, CRC32C, CRC64NVME, SHA1, SHA256 (base64 digests).

CRC32C and CRC64NVME come from awscrt, which clients themselves need to produce them (botocore
computes those two only with awscrt installed). Without it they are refused, never accepted
unverified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from typing import Protocol

from storage import errors


class Checksum(Protocol):
    def update(self, data: bytes | bytearray | memoryview) -> None: ...

    def digest(self) -> bytes: ...


class Crc32:
    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


class _CrtChecksum:
    def __init__(self, name: str, size: int) -> None:
        from awscrt import checksums  # optional dependency, see module docstring

        self._fn = getattr(checksums, name)
        self._size = size
        self._value = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._value = self._fn(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._size, "big")


def _crt_available() -> bool:
    try:
        import awscrt.checksums  # noqa: F401
    except ImportError:
        return False
    return True


ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")


def new_checksum(algorithm: str) -> Checksum:
    """A running checksum for `algorithm` (lower-case name as in `x-amz-checksum-<name>`)."""
    if algorithm == "crc32":
        return Crc32()
    if algorithm in ("sha1", "sha256"):
        return hashlib.new(algorithm)
    if algorithm in ("crc32c", "crc64nvme") and _crt_available():
        return _CrtChecksum(algorithm, 4 if algorithm == "crc32c" else 8)
    raise errors.InvalidRequest(
        f"Checksum algorithm {algorithm.upper()} is not supported by this server (use CRC32, SHA1 or SHA256)."
    )


DIGEST_SIZES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}


def decode_b64_digest(value: str, algorithm: str, header: str) -> bytes:
    """The raw digest of a base64 checksum header; InvalidDigest if it cannot be one."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != DIGEST_SIZES.get(algorithm, 16):
        raise errors.InvalidDigest(f"The value of {header} is not a valid base64 {algorithm.upper()} digest.")
    return raw
