"""Write headers this endpoint cannot honour: refused, never silently dropped (issue 17 item 6).

A client that asks for encryption, tags, a public ACL or an object lock and gets a plain 200
believes it got them. Each such header on PutObject and CreateMultipartUpload is answered here,
before a byte of the body is read, by one visible rule (docs/storage.md, "Headers refused"):

- Server-side encryption (`x-amz-server-side-encryption`, any value, and SSE-C's
  `x-amz-server-side-encryption-customer-*`): 501 NotImplemented. Objects are plain files on
  the server's disk, encrypted only if that disk is; confirming `AES256` would claim an
  encryption this endpoint does not perform.
- Tagging (`x-amz-tagging`, unless empty): 501 NotImplemented, as GetObjectTagging and
  PutObjectTagging (the `?tagging` sub-resource) are.
- Canned ACLs (`x-amz-acl`): `private` and `bucket-owner-full-control` are accepted and change
  nothing, since every bucket is already private to its job and staff readers; a public one
  (`public-read`, `public-read-write`, `authenticated-read`) is 403 AccessDenied, as S3 answers
  under Block Public Access; any other value is 400 InvalidArgument. Grants
  (`x-amz-grant-*`) are 501 NotImplemented.
- Object Lock (`x-amz-object-lock-*`) and `x-amz-website-redirect-location`: 501 NotImplemented.
"""

from __future__ import annotations

from collections.abc import Mapping

from storage import errors

ACCEPTED_ACLS = frozenset(["private", "bucket-owner-full-control"])
PUBLIC_ACLS = frozenset(["public-read", "public-read-write", "authenticated-read"])
_NOT_IMPLEMENTED_PREFIXES = {
    "x-amz-server-side-encryption": (
        "Server-side encryption is not implemented: objects are stored as plain files on the server's disk "
        "(encrypted at rest only if that disk is). Send the request without {header}."
    ),
    "x-amz-grant-": "ACL grants are not implemented: every bucket is private. Send the request without {header}.",
    "x-amz-object-lock-": "Object Lock is not implemented. Send the request without {header}.",
    "x-amz-website-redirect-location": "Website redirects are not implemented. Send the request without {header}.",
}


def check_write_headers(headers: Mapping[str, str]) -> None:
    """Refuse (S3Error) what PutObject / CreateMultipartUpload would otherwise drop silently.
    `headers` has lower-case names (storage.auth.request_parts)."""
    for header in sorted(headers):
        for prefix, message in _NOT_IMPLEMENTED_PREFIXES.items():
            if header.startswith(prefix):
                raise errors.NotImplementedError_(message.format(header=header), Header=header)
    if headers.get("x-amz-tagging", "").strip():
        raise errors.NotImplementedError_(
            "Object tagging is not implemented: tags would be dropped. Send the request without x-amz-tagging.",
            Header="x-amz-tagging",
        )
    _check_acl(headers.get("x-amz-acl"))


def _check_acl(value: str | None) -> None:
    if value is None:
        return
    acl = value.strip().lower()
    if acl in ACCEPTED_ACLS:
        return  # every object is already private to its bucket's readers
    if acl in PUBLIC_ACLS:
        raise errors.AccessDenied(
            f"x-amz-acl {value!r} would make the object public; objects here are always private "
            "(use private or bucket-owner-full-control, or no x-amz-acl)."
        )
    raise errors.InvalidArgument(
        f"x-amz-acl {value!r} is not accepted: use private or bucket-owner-full-control (both mean the object "
        "stays private, as every object here is).",
        ArgumentName="x-amz-acl",
    )
