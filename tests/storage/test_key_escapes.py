"""Keys never name anything outside their bucket: validation, symlinks, and a fuzz of generated keys."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from storage import errors, store
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


@pytest.mark.parametrize(
    "key", ["../outside", "a/../../outside", "%2e%2e/outside", "a/%2e%2e/%2e%2e/x", "back%5Cslash", "nul%00"]
)
def test_escaping_keys_sent_over_http_get_a_clear_error_and_write_nothing(
    http_server, writer, tmp_path, settings, key
) -> None:
    cred = writer()
    url = f"{http_server.url}/{bucket_of(cred)}/{key}"
    headers = signed_headers("PUT", url, cred, "UNSIGNED-PAYLOAD", {"Content-Length": "4"})
    response = httpx.put(url, content=b"evil", headers=headers)
    assert response.status_code in (400, 403, 404), response.text
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
