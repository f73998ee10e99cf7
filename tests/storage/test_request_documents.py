"""The XML documents clients send (CompleteMultipartUpload, DeleteObjects) are parsed strictly:
no document type declarations (no entity expansion), the right root element, the fields each
entry needs."""

from __future__ import annotations

import pytest

from storage import errors
from storage.xml import parse_complete, parse_delete

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
COMPLETE = f'<CompleteMultipartUpload {NS}><Part><PartNumber>2</PartNumber><ETag>"b"</ETag></Part><Part><PartNumber>1</PartNumber><ETag>"a"</ETag></Part></CompleteMultipartUpload>'
DELETE = f"<Delete {NS}><Quiet>true</Quiet><Object><Key>a/b</Key></Object><Object><Key>c</Key></Object></Delete>"
BILLION_LAUGHS = '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'


def test_parts_are_read_in_the_order_listed() -> None:
    assert parse_complete(COMPLETE.encode()) == [(2, '"b"'), (1, '"a"')]


def test_keys_and_the_quiet_flag_are_read() -> None:
    assert parse_delete(DELETE.encode()) == (["a/b", "c"], True)


@pytest.mark.parametrize("parse, document", [(parse_complete, COMPLETE), (parse_delete, DELETE)])
def test_a_document_type_declaration_is_refused(parse, document) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(errors.MalformedXML, match="Document type declarations"):
        parse((BILLION_LAUGHS + document).encode())


@pytest.mark.parametrize("parse, document", [(parse_complete, DELETE), (parse_delete, COMPLETE)])
def test_the_other_documents_root_is_refused(parse, document) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(errors.MalformedXML):
        parse(document.encode())


@pytest.mark.parametrize("parse", [parse_complete, parse_delete])
def test_a_document_that_is_not_xml_is_refused(parse) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(errors.MalformedXML):
        parse(b"<Delete><Object>")


def test_a_part_without_its_etag_is_refused() -> None:
    with pytest.raises(errors.MalformedXML, match="PartNumber and an ETag"):
        parse_complete(b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>")


def test_an_object_without_its_key_is_refused() -> None:
    with pytest.raises(errors.MalformedXML, match="needs a Key"):
        parse_delete(b"<Delete><Object><VersionId>1</VersionId></Object></Delete>")
