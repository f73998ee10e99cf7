"""S3's XML documents: building responses and reading CompleteMultipartUpload bodies."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.http import HttpRequest

from storage import checksums, errors

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
Child = tuple[str, Any]
# What XML 1.0 cannot carry at all, not even as a character reference: C0 controls other than
# tab, LF and CR, lone surrogates (undecodable bytes), U+FFFE and U+FFFF. Text echoed into a
# document must be refused before it gets here, or the client cannot parse the answer.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _fill(parent: ET.Element, children: Iterable[Child]) -> None:
    for tag, value in children:
        if value is None:
            continue
        node = ET.SubElement(parent, tag)
        if isinstance(value, list):
            _fill(node, value)
        elif isinstance(value, bool):
            node.text = "true" if value else "false"
        elif isinstance(value, datetime):
            node.text = iso(value)
        else:
            node.text = str(value)


def document(root_tag: str, children: Iterable[Child], *, namespace: bool = True) -> bytes:
    """`<root_tag xmlns=...>` with `children` as (tag, value) pairs; a list value nests."""
    root = ET.Element(root_tag, {"xmlns": NAMESPACE} if namespace else {})
    _fill(root, children)
    return DECLARATION + ET.tostring(root, encoding="utf-8")


def printable(text: str) -> str:
    """`text` with what XML cannot carry replaced by U+FFFD (for diagnostics only)."""
    return NOT_XML.sub("\ufffd", text)


def request_id(request: HttpRequest) -> str:
    """The RequestId of an answer (`<RequestId>`, `x-amz-request-id`): the request's correlation id."""
    return getattr(request, "correlation_id", "") or ""


def error_document(error: errors.S3Error, *, resource: str, request_id: str) -> bytes:
    # An error may quote the very input it refuses (a key with NUL, an access key id with a
    # control character): the document stays well-formed whatever it quotes.
    children: list[Child] = [("Code", error.code), ("Message", printable(error.message))]
    children += [(name, printable(str(value))) for name, value in error.extra.items()]
    children += [("Resource", printable(resource)), ("RequestId", request_id)]
    return document("Error", children, namespace=False)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _document(body: bytes, name: str) -> ET.Element:
    """The root of a request document that must be a `name` element (any namespace), parsed
    without document type declarations (no entity expansion)."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise errors.MalformedXML("Document type declarations are not accepted.")
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise errors.MalformedXML() from None
    if _local(root.tag) != name:
        raise errors.MalformedXML()
    return root


def parse_complete(body: bytes) -> list[tuple[int, str]]:
    """(part number, ETag) pairs of a CompleteMultipartUpload document, in the order listed."""
    root = _document(body, "CompleteMultipartUpload")
    listed = []
    for part in root:
        if _local(part.tag) != "Part":
            continue
        fields = {_local(child.tag): (child.text or "").strip() for child in part}
        try:
            number = int(fields["PartNumber"])
            etag = fields["ETag"]
        except (KeyError, ValueError):
            raise errors.MalformedXML("Each Part needs a PartNumber and an ETag.") from None
        listed.append((number, etag))
    return listed


def parse_complete_checksums(body: bytes) -> dict[int, dict[str, str]]:
    """The `Checksum<ALG>` elements of a CompleteMultipartUpload's parts: part number ->
    lower-case algorithm -> base64 value (parse_complete has checked the document)."""
    found: dict[int, dict[str, str]] = {}
    for part in _document(body, "CompleteMultipartUpload"):
        fields = {_local(child.tag): (child.text or "").strip() for child in part}
        named = {tag: value for tag, value in fields.items() if tag.startswith("Checksum") and tag != "ChecksumType"}
        if _local(part.tag) == "Part" and named:
            found[int(fields["PartNumber"])] = {
                checksums.algorithm_name(tag.removeprefix("Checksum"), tag): value for tag, value in named.items()
            }
    return found


def parse_delete(body: bytes) -> tuple[list[str], bool]:
    """Keys of a DeleteObjects (multi-object delete) document, and its Quiet flag."""
    root = _document(body, "Delete")
    keys, quiet = [], False
    for node in root:
        if _local(node.tag) == "Quiet":
            quiet = (node.text or "").strip().lower() == "true"
        elif _local(node.tag) == "Object":
            key = next((child.text for child in node if _local(child.tag) == "Key"), None)
            if key is None:
                raise errors.MalformedXML("Each Object needs a Key.")
            keys.append(key)
    if len(keys) > 1000:
        raise errors.MalformedXML("At most 1000 keys per request.")
    return keys, quiet
