"""Keys never name anything outside their bucket: validation, symlinks, and a fuzz of generated keys."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import botocore.exceptions
import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from providers.credentials import job_upload_bearer
from storage import errors, store
from storage.auth import parse_query
from storage.paths import key_segments
from tests.storage.conftest import bucket_of, client_for, objects_on_disk
from tests.storage.raw import signed_headers

ESCAPING = [
    "../outside",
    "a/../../outside",
    "..",
    ".",
    "a/./b",
    "/etc/passwd",
    "a//b",
    "trailing/",
    "nul\x00byte",
    "back\\slash",
    "..\\..\\outside",
    "new\nline",
    "x" * 256,
    "a/" * 600,
]


@pytest.mark.parametrize("key", ESCAPING)
def test_escaping_keys_are_refused(key: str) -> None:
    with pytest.raises(errors.S3Error):
        key_segments(key)


# Literal dot segments never reach the server: the HTTP client removes them (RFC 3986) from the
# path it sends, not from the one it signed, so the signature fails. Encoded ones arrive, and
# the key is refused by name.
OVER_HTTP = [
    ("../outside", 403, "SignatureDoesNotMatch"),
    ("a/../../outside", 403, "SignatureDoesNotMatch"),
    ("%2e%2e/outside", 400, "InvalidArgument"),
    ("a/%2e%2e/%2e%2e/x", 400, "InvalidArgument"),
    ("back%5Cslash", 400, "InvalidArgument"),
    ("nul%00", 400, "InvalidArgument"),
]


@pytest.mark.parametrize(("key", "status", "code"), OVER_HTTP)
def test_escaping_keys_sent_over_http_get_a_clear_error_and_write_nothing(
    http_server, writer, tmp_path, settings, key, status, code
) -> None:
    cred = writer()
    url = f"{http_server.url}/{bucket_of(cred)}/{key}"
    headers = signed_headers("PUT", url, cred, "UNSIGNED-PAYLOAD", {"Content-Length": "4"})
    response = httpx.put(url, content=b"evil", headers=headers)
    assert response.status_code == status, response.text
    assert f"<Code>{code}</Code>" in response.text
    outputs = Path(settings.OUTPUTS_DIR)
    written = (
        [p for p in outputs.parent.rglob("*") if p.is_file() and p.read_bytes() == b"evil"] if outputs.exists() else []
    )
    assert written == []


def test_a_symlink_inside_a_bucket_is_never_followed(http_server, s3, writer, tmp_path, settings) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    client.put_object(Bucket=bucket, Key="real.txt", Body=b"inside")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside secret")
    os.symlink(outside, Path(settings.OUTPUTS_DIR) / bucket / "link")
    os.symlink(outside / "secret.txt", Path(settings.OUTPUTS_DIR) / bucket / "file-link")
    import botocore.exceptions

    for key in ("link/secret.txt", "file-link"):
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            client.get_object(Bucket=bucket, Key=key)
        assert caught.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(botocore.exceptions.ClientError):
        client.put_object(Bucket=bucket, Key="link/planted.txt", Body=b"x")
    assert not (outside / "planted.txt").exists()
    assert (outside / "secret.txt").read_text() == "outside secret"
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == ["real.txt"]
    # Overwriting a symlinked name replaces the link itself, never its target.
    client.put_object(Bucket=bucket, Key="file-link", Body=b"replaced")
    assert (outside / "secret.txt").read_text() == "outside secret"


def test_a_key_cannot_be_both_an_object_and_a_folder(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    client.put_object(Bucket=bucket, Key="a", Body=b"file")
    import botocore.exceptions

    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.put_object(Bucket=bucket, Key="a/b", Body=b"x")
    assert caught.value.response["Error"]["Code"] == "InvalidArgument"
    assert "folder" in caught.value.response["Error"]["Message"]
    assert objects_on_disk(bucket) == ["a"]


_ALPHABET = st.sampled_from(
    ["a", "b", ".", "..", "/", "\\", "\x00", "%2e", "~", " ", "é", ":", "*", "\n", "\u202e", "\ufeff"]
)


@pytest.mark.slow
@hsettings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.one_of(_ALPHABET, st.text(min_size=1, max_size=6)), min_size=1, max_size=12))
def test_no_generated_key_escapes_the_bucket(parts: list[str], tmp_path_factory: pytest.TempPathFactory) -> None:
    root = _fuzz_root(tmp_path_factory)
    key = "".join(parts)
    try:
        segments = key_segments(key)
    except errors.S3Error:
        return
    bucket_dir = (root / "bucket").resolve()
    target = (bucket_dir / Path(*segments)).resolve()
    assert target.is_relative_to(bucket_dir) and target != bucket_dir, key
    fd, tmp = store.temp_file(root)
    os.write(fd, b"fuzz")
    os.close(fd)
    try:
        info = store.commit(root, "bucket", key, tmp)
    except errors.S3Error:
        store.discard(tmp)
        return
    assert info.size == 4
    assert (bucket_dir / Path(*segments)).read_bytes() == b"fuzz"
    assert store.delete_object(root, "bucket", key)
    assert not any(p.is_file() for p in root.parent.rglob("*") if not p.is_relative_to(root))


_FUZZ_ROOT: list[Path] = []


def _fuzz_root(factory: pytest.TempPathFactory) -> Path:
    if not _FUZZ_ROOT:
        base = factory.mktemp("fuzz")
        (base / "outputs").mkdir()
        _FUZZ_ROOT.append(base / "outputs")
    return _FUZZ_ROOT[0]


# --- Keys and listing parameters are UTF-8 that XML can carry (issue 12 finding 12) ----------


def _bearer(cred) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"X-Upload-Token": job_upload_bearer(cred.access_key_id)}


def _parsed_error(response: httpx.Response) -> dict[str, str]:
    """The error document's fields; ET raises if the document is not well-formed XML."""
    return {child.tag: child.text or "" for child in ET.fromstring(response.content)}


def test_keys_that_are_not_utf8_are_refused_never_folded_into_one_object(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    base = f"{http_server.url}/{bucket}"
    # A real U+FFFD is a valid key of its own (boto3 sends it as %EF%BF%BD).
    client_for(s3, http_server, cred).put_object(Bucket=bucket, Key="k\ufffd", Body=b"the real one")
    # %FF and %FE are not UTF-8, %C3 is truncated, %ED%A0%80 a surrogate, %C0%AF an overlong "/".
    for bad in ("k%FF", "k%FE", "k%C3", "k%ED%A0%80", "k%C0%AF", "dir%FF/k"):
        for method in ("PUT", "GET", "DELETE"):
            response = httpx.request(method, f"{base}/{bad}", content=b"overwritten", headers=_bearer(cred))
            assert response.status_code == 400, (bad, method, response.text)
            assert _parsed_error(response)["Code"] == "InvalidURI"
    assert objects_on_disk(bucket) == ["k\ufffd"]
    got = httpx.get(f"{base}/k%EF%BF%BD", headers=_bearer(cred))
    assert got.status_code == 200 and got.content == b"the real one"


@pytest.mark.parametrize(
    "param", ["prefix", "delimiter", "marker", "start-after", "continuation-token", "key-marker", "upload-id-marker"]
)
def test_listing_parameters_xml_cannot_carry_are_refused_by_name(http_server, writer, param) -> None:
    cred = writer()
    # NUL and other C0 controls, LF and CR, U+FFFE, bytes that are not UTF-8, an encoded surrogate.
    for value in ("%00", "a%01b", "%0B", "%1F", "%0A", "%0D", "%EF%BF%BE", "%FF", "%ED%B0%80"):
        url = f"{http_server.url}/{bucket_of(cred)}?list-type=2&{param}={value}"
        response = httpx.get(url, headers=_bearer(cred))
        assert response.status_code == 400, (value, response.text)
        error = _parsed_error(response)
        assert (error["Code"], error["ArgumentName"]) == ("InvalidArgument", param)


def test_a_nul_delimiter_from_boto3_gets_an_s3_error_not_an_unparseable_listing(http_server, s3, writer) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    client.put_object(Bucket=bucket, Key="a/b", Body=b"1")
    for call in (client.list_objects, client.list_objects_v2):
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            call(Bucket=bucket, Delimiter="\x00")
        assert caught.value.response["Error"]["Code"] == "InvalidArgument"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # Tab is text XML carries: still a delimiter like any other.
    assert client.list_objects_v2(Bucket=bucket, Delimiter="\t")["KeyCount"] == 1


def test_a_response_override_with_a_line_break_is_a_400_not_a_500(http_server, writer) -> None:
    cred = writer()
    url = f"{http_server.url}/{bucket_of(cred)}/k"
    assert httpx.put(url, content=b"x", headers=_bearer(cred)).status_code == 200
    response = httpx.get(f"{url}?response-content-type=text/plain%0D%0ASet-Cookie:%20a=b", headers=_bearer(cred))
    assert response.status_code == 400
    assert _parsed_error(response)["ArgumentName"] == "response-content-type"
    assert "set-cookie" not in response.headers


def test_an_error_quoting_a_nul_in_the_key_is_still_well_formed_xml(http_server, writer) -> None:
    cred = writer()
    response = httpx.put(f"{http_server.url}/{bucket_of(cred)}/nul%00byte", content=b"x", headers=_bearer(cred))
    assert response.status_code == 400
    error = _parsed_error(response)
    assert error["Code"] == "InvalidArgument" and error["Resource"].endswith("/nul\ufffdbyte")


def test_keys_xml_cannot_carry_are_refused() -> None:
    for key in ("a\ufffe", "a\uffff", "a\ud800", "a\x0b"):
        with pytest.raises(errors.InvalidArgument):
            key_segments(key)


def test_files_put_on_disk_under_names_no_key_could_have_are_not_listed(http_server, s3, writer, settings) -> None:
    cred = writer()
    bucket = bucket_of(cred)
    client = client_for(s3, http_server, cred)
    client.put_object(Bucket=bucket, Key="good/1", Body=b"1")
    folder = os.fsencode(Path(settings.OUTPUTS_DIR) / bucket / "good")
    for name in (b"bad\xff", b"ctl\x01", b"nonchar\xef\xbf\xbe"):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(b"planted")
    os.mkdir(os.path.join(folder, b"dir\xfe"))
    with open(os.path.join(folder, b"dir\xfe", b"inner"), "wb") as f:
        f.write(b"planted")
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == ["good/1"]
    raw = httpx.get(f"{http_server.url}/{bucket}", headers=_bearer(cred))
    assert [k.text for k in ET.fromstring(raw.content).iter("{http://s3.amazonaws.com/doc/2006-03-01/}Key")] == [
        "good/1"
    ]


@hsettings(max_examples=300, derandomize=True, deadline=None)
@given(raw=st.binary(max_size=12))
def test_a_percent_encoded_value_decodes_to_exactly_its_bytes_or_is_refused(raw: bytes) -> None:
    encoded = "".join(f"%{b:02X}" for b in raw)
    try:
        [(name, value)] = parse_query(f"prefix={encoded}")
    except errors.S3Error:
        return
    assert name == "prefix" and value.encode("utf-8") == raw
