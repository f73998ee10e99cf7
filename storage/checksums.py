"""Payload checksums S3 clients send: CRC32, CRC32C, CRC64NVME, SHA1, SHA256 (base64 digests).

CRC32 comes from ISA-L (python-isal: carry-less multiplication folding, about ten times
zlib's speed; zlib's where isal is missing), the SHAs from hashlib, CRC32C and CRC64NVME from
awscrt, the AWS common runtime botocore itself computes them with (hardware-accelerated, and
it can combine the CRCs of parts into the CRC of their concatenation). Each is computed only
when the request names it.

A multipart object's checksum is built from its parts' as S3 builds it: COMPOSITE, the
checksum of the parts' concatenated digests with `-<parts>` appended (CRC32, CRC32C, SHA1,
SHA256), or FULL_OBJECT, the CRC of the whole object, combined from the parts' CRCs without
reading the object again (CRC32, CRC32C, CRC64NVME; CRC64NVME has only this form).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from awscrt import checksums as crt

try:
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover - isal is in requirements.txt
    from zlib import crc32

from storage import errors


class Checksum(Protocol):
    def update(self, data: bytes | bytearray | memoryview) -> None: ...

    def digest(self) -> bytes: ...


class _Crc:
    """A running CRC of `size` bytes over a function of (data, previous value)."""

    def __init__(self, function: Callable[[bytes | bytearray | memoryview, int], int], size: int) -> None:
        self._function, self._size = function, size
        self._value = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._value = self._function(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._size, "big")


ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
DIGEST_SIZES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}
_CRCS = {"crc32": crc32, "crc32c": crt.crc32c, "crc64nvme": crt.crc64nvme}
_COMBINE = {"crc32": crt.combine_crc32, "crc32c": crt.combine_crc32c, "crc64nvme": crt.combine_crc64nvme}
COMPOSITE, FULL_OBJECT = "COMPOSITE", "FULL_OBJECT"
_TYPES = {COMPOSITE: ("crc32", "crc32c", "sha1", "sha256"), FULL_OBJECT: ("crc32", "crc32c", "crc64nvme")}


def new_checksum(algorithm: str) -> Checksum:
    """A running checksum for `algorithm` (lower-case name as in `x-amz-checksum-<name>`)."""
    if algorithm in _CRCS:
        return _Crc(_CRCS[algorithm], DIGEST_SIZES[algorithm])
    if algorithm in ("sha1", "sha256"):
        return hashlib.new(algorithm)
    raise errors.InvalidRequest(
        f"Checksum algorithm {algorithm.upper()} is not supported (use CRC32, CRC32C, CRC64NVME, SHA1 or SHA256)."
    )


def algorithm_name(value: str, header: str) -> str:
    """The lower-case algorithm of an `x-amz-checksum-algorithm`-style header value."""
    algorithm = value.strip().lower()
    if algorithm not in ALGORITHMS:
        raise errors.InvalidRequest(
            f"{header} {value.strip()[:40]!r} is not supported (use CRC32, CRC32C, CRC64NVME, SHA1 or SHA256)."
        )
    return algorithm


def checksum_type(value: str | None, algorithm: str) -> str:
    """The multipart checksum type asked for (`x-amz-checksum-type`), or S3's default for the
    algorithm; refuses combinations S3 refuses."""
    wanted = (value or "").strip().upper() or (FULL_OBJECT if algorithm == "crc64nvme" else COMPOSITE)
    if wanted not in _TYPES:
        raise errors.InvalidRequest(f"x-amz-checksum-type must be {COMPOSITE} or {FULL_OBJECT}.")
    if algorithm not in _TYPES[wanted]:
        raise errors.InvalidRequest(f"The {wanted} checksum type is not supported for {algorithm.upper()}.")
    return wanted


def encode(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def combined(algorithm: str, kind: str, parts: Sequence[tuple[bytes, int]]) -> str:
    """The multipart object's checksum (base64) from its parts' (digest, size), in order."""
    if kind == FULL_OBJECT:
        combine, value = _COMBINE[algorithm], 0
        for digest, size in parts:
            value = combine(value, int.from_bytes(digest, "big"), size)
        return encode(value.to_bytes(DIGEST_SIZES[algorithm], "big"))
    whole = new_checksum(algorithm)
    whole.update(b"".join(digest for digest, _ in parts))
    return f"{encode(whole.digest())}-{len(parts)}"


def decode_b64_digest(value: str, algorithm: str, header: str) -> bytes:
    """The raw digest of a base64 checksum header; InvalidDigest if it cannot be one."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != DIGEST_SIZES.get(algorithm, 16):
        raise errors.InvalidDigest(f"The value of {header} is not a valid base64 {algorithm.upper()} digest.")
    return raw


@dataclass(frozen=True)
class Claimed:
    """The checksums a CompleteMultipartUpload states, to be compared with what the server
    built: per listed part (the XML's `Checksum<ALG>` elements) and for the whole object
    (`x-amz-checksum-<alg>` headers, `x-amz-checksum-type`). Both are optional, as in S3."""

    parts: dict[int, dict[str, str]] = field(default_factory=dict)  # number -> algorithm -> base64
    whole: dict[str, str] = field(default_factory=dict)  # algorithm -> base64
    whole_type: str = ""


def claimed(headers: Mapping[str, str], parts: dict[int, dict[str, str]]) -> Claimed:
    """The claims of a Complete request: its headers and its document's per-part checksums."""
    whole = {name: headers[f"x-amz-checksum-{name}"] for name in ALGORITHMS if f"x-amz-checksum-{name}" in headers}
    kind = headers.get("x-amz-checksum-type", "").strip().upper()
    if kind and kind not in _TYPES:
        raise errors.InvalidRequest(f"x-amz-checksum-type must be {COMPOSITE} or {FULL_OBJECT}.")
    return Claimed(parts, whole, kind)


def check_part(number: int, stored: tuple[str, bytes] | None, claims: dict[str, str]) -> None:
    """A part's checksum listed in Complete must be the one its UploadPart carried (InvalidPart,
    as S3 answers); a part uploaded without one cannot match any."""
    for algorithm, value in claims.items():
        if stored is None or stored[0] != algorithm or encode(stored[1]) != value.strip():
            raise errors.InvalidPart(
                f"Part {number}'s Checksum{algorithm.upper()} does not match the checksum the part was uploaded with.",
                PartNumber=str(number),
            )


def check_whole(claims: Claimed, algorithm: str, kind: str, computed: str | None) -> None:
    """The object checksum stated with Complete against the one built from the parts
    (`computed`, of the upload's `algorithm` and `kind`): BadDigest when they differ; a
    checksum or type the upload was not created with cannot be checked and is refused."""
    if claims.whole_type and claims.whole_type != kind:
        raise errors.InvalidRequest(
            f"x-amz-checksum-type {claims.whole_type} does not match the upload's checksum type "
            f"({kind or 'none: it was created without a checksum algorithm'})."
        )
    for name, value in claims.whole.items():
        if name != algorithm or computed is None:
            raise errors.InvalidRequest(
                f"x-amz-checksum-{name} cannot be checked: the upload was created with "
                f"{algorithm.upper() + ' as its' if algorithm else 'no'} checksum algorithm."
            )
        stated = value.strip()
        if stated != (computed if "-" in stated else computed.split("-")[0]):
            raise errors.BadDigest(f"x-amz-checksum-{name} does not match the checksum of the object's parts.")
