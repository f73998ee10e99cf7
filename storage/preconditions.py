"""Conditional writes: `If-None-Match: *` (create only) and `If-Match: <etag>` (replace only
that version) on PutObject and CompleteMultipartUpload, as S3 answers them.

The condition is checked twice: once before the body is read (a create-only write of a key
that exists costs no upload) and again in `store.commit`, under the lock of the folder the
object lands in, right before the rename. Only the second check decides; see `store.commit`
for why it is race-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from storage import errors

if TYPE_CHECKING:
    from storage.store import ObjectInfo


def etag_matches(header: str, etag: str) -> bool:
    """Whether a comma-separated If-Match / If-None-Match list names `etag` (or is `*`)."""
    wanted = {item.strip().removeprefix("W/").strip('"') for item in header.split(",")}
    return "*" in wanted or etag.strip('"') in wanted


@dataclass(frozen=True)
class WritePrecondition:
    """What must hold of the current object for a write to replace it.

    `if_match`: the object exists and its ETag is one of these (S3: 404 NoSuchKey when it does
    not exist, 412 when it differs). `if_none_match`: no object exists at the key (412).
    """

    key: str
    if_match: str | None = None
    if_none_match: bool = False

    def check(self, current: ObjectInfo | None) -> None:
        if self.if_none_match and current is not None:
            raise errors.PreconditionFailed(Condition="If-None-Match")
        if self.if_match is not None:
            if current is None:
                raise errors.NoSuchKey(Key=self.key)
            if not etag_matches(self.if_match, current.etag):
                raise errors.PreconditionFailed(Condition="If-Match")


def write_precondition(headers: Mapping[str, str], key: str) -> WritePrecondition | None:
    """The precondition of a PutObject or CompleteMultipartUpload, or None.

    S3 accepts only `*` in If-None-Match on a write; an ETag there is refused as not
    implemented rather than ignored (ignoring it would overwrite what the client meant to keep).
    """
    if_match = headers.get("if-match")
    if_none_match = headers.get("if-none-match")
    if if_match is None and if_none_match is None:
        return None
    if if_none_match is not None and if_none_match.strip() != "*":
        raise errors.NotImplementedError_("If-None-Match on a write accepts only '*' (create the key only if absent).")
    if if_match is not None and not if_match.strip():
        raise errors.InvalidArgument("If-Match must name an ETag.", ArgumentName="If-Match")
    return WritePrecondition(key=key, if_match=if_match, if_none_match=if_none_match is not None)
