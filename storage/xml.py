"""S3's XML documents: building responses and reading CompleteMultipartUpload bodies."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from storage import errors

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
Child = tuple[str, Any]


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
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def error_document(error: errors.S3Error, *, resource: str, request_id: str) -> bytes:
    children: list[Child] = [("Code", error.code), ("Message", error.message)]
    children += list(error.extra.items())
    children += [("Resource", resource), ("RequestId", request_id)]
    return document("Error", children, namespace=False)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_complete(body: bytes) -> list[tuple[int, str]]:
    """(part number, ETag) pairs of a CompleteMultipartUpload document, in the order listed."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise errors.MalformedXML("Document type declarations are not accepted.")
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise errors.MalformedXML() from None
    if _local(root.tag) != "CompleteMultipartUpload":
        raise errors.MalformedXML()
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


def parse_delete(body: bytes) -> tuple[list[str], bool]:
    """Keys of a DeleteObjects (multi-object delete) document, and its Quiet flag."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise errors.MalformedXML("Document type declarations are not accepted.")
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise errors.MalformedXML() from None
    if _local(root.tag) != "Delete":
        raise errors.MalformedXML()
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
