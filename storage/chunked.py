"""Decoding `Content-Encoding: aws-chunked` bodies, as they stream.

Framing (AWS SigV4 streaming): `<hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n` repeated, a
zero-size chunk, then optional trailer lines (`x-amz-checksum-crc32:<b64>`, and
`x-amz-trailer-signature:<sig>` when signed), then an empty line. boto3 >= 1.36 sends
STREAMING-UNSIGNED-PAYLOAD-TRAILER bodies this way over HTTPS; Java and Go SDKs send signed chunks.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from storage import errors, signing

MAX_LINE = 4096  # a chunk header or trailer line longer than this is not aws-chunked
MAX_TRAILER = 16 * 1024


@dataclass
class ChunkSigning:
    """What verifying signed chunks needs: the signing key and the request's seed signature."""

    key: bytes
    claim: signing.SignedRequest
    previous: str = field(init=False)

    def __post_init__(self) -> None:
        self.previous = self.claim.signature.lower()


class AwsChunkedDecoder:
    """Feed raw body bytes; get payload bytes back. `finish()` checks the body ended properly."""

    def __init__(self, signing_state: ChunkSigning | None = None, *, trailer_signed: bool = False) -> None:
        self._signing = signing_state
        self._trailer_signed = trailer_signed
        self._state = "header"
        self._line = bytearray()
        self._remaining = 0
        self._chunk_signature = ""
        self._chunk_hash = hashlib.sha256()
        self._trailer = bytearray()
        self.trailers: dict[str, str] = {}

    def feed(self, data: bytes) -> list[memoryview]:
        """The payload in `data`, as views of it (no copy: `data` must not change)."""
        out: list[memoryview] = []
        view = memoryview(data)
        while view:
            if self._state == "data":
                take = view[: self._remaining]
                out.append(take)
                if self._signing is not None:
                    self._chunk_hash.update(take)
                self._remaining -= len(take)
                view = view[len(take) :]
                if self._remaining == 0:
                    self._end_of_data()
            elif self._state == "done":
                raise errors.IncompleteBody("Unexpected bytes after the end of the aws-chunked body.")
            else:
                view = self._read_line(view)
        return out

    def finish(self) -> None:
        if self._state != "done":
            raise errors.IncompleteBody("The aws-chunked body ended before its final chunk.")

    def _read_line(self, view: memoryview) -> memoryview:
        end = bytes(view[: MAX_LINE + 2]).find(b"\n")
        if end < 0:
            self._line += view
            if len(self._line) > MAX_LINE:
                raise errors.InvalidRequest("Malformed aws-chunked body: line too long.")
            return view[len(view) :]
        self._line += view[: end + 1]
        line = bytes(self._line[:-1]).rstrip(b"\r")
        self._line.clear()
        self._on_line(line)
        return view[end + 1 :]

    def _on_line(self, line: bytes) -> None:
        if self._state == "crlf":
            if line:
                raise errors.InvalidRequest("Malformed aws-chunked body: chunk data longer than its declared size.")
            self._state = "header"
        elif self._state == "header":
            self._on_chunk_header(line)
        elif self._state == "trailer":
            self._on_trailer_line(line)

    def _on_chunk_header(self, line: bytes) -> None:
        size_text, _, extension = line.partition(b";")
        try:
            size = int(size_text, 16)
        except ValueError:
            raise errors.InvalidRequest("Malformed aws-chunked body: bad chunk size.") from None
        if self._signing is not None:
            name, _, value = extension.partition(b"=")
            if name.strip() != b"chunk-signature" or len(value.strip()) != 64:
                raise errors.SignatureDoesNotMatch("A signed aws-chunked body needs chunk-signature on every chunk.")
            self._chunk_signature = value.strip().decode("ascii", "replace")
            self._chunk_hash = hashlib.sha256()
        self._remaining = size
        if size:
            self._state = "data"
        else:
            self._end_of_data()

    def _end_of_data(self) -> None:
        if self._signing is not None:
            self._verify_chunk()
        if self._remaining == 0 and self._state == "data":
            self._state = "crlf"
        elif self._state == "header":  # the zero-size chunk
            self._state = "trailer"

    def _verify_chunk(self) -> None:
        assert self._signing is not None
        expected = signing.chunk_signature(
            self._signing.key, self._signing.claim, self._signing.previous, self._chunk_hash.hexdigest()
        )
        if not hmac.compare_digest(expected, self._chunk_signature.lower()):
            raise errors.SignatureDoesNotMatch("A chunk signature does not match its data.")
        self._signing.previous = expected

    def _on_trailer_line(self, line: bytes) -> None:
        if not line:
            self._check_trailer_signature()
            self._state = "done"
            return
        self._trailer += line + b"\n"
        if len(self._trailer) > MAX_TRAILER:
            raise errors.InvalidRequest("Malformed aws-chunked body: trailer too long.")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise errors.InvalidRequest("Malformed aws-chunked trailer line.")
        self.trailers[name.strip().lower()] = value.strip()

    def _check_trailer_signature(self) -> None:
        if not self._trailer_signed:
            return
        assert self._signing is not None
        claimed = self.trailers.pop("x-amz-trailer-signature", "")
        signed_part = b"".join(
            line + b"\n"
            for line in bytes(self._trailer).split(b"\n")
            if line and not line.lower().startswith(b"x-amz-trailer-signature:")
        )
        expected = signing.trailer_signature(
            self._signing.key, self._signing.claim, self._signing.previous, signed_part
        )
        if not hmac.compare_digest(expected, claimed.lower()):
            raise errors.SignatureDoesNotMatch("The trailer signature does not match.")
