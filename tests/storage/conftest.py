"""Fixtures for the S3 endpoint: a live server (HTTP and HTTPS), credentials and real clients.

Until job upload credentials exist (the jobs app), a test-only resolver stands in for them:
`writer(bucket)` makes a credential that owns one bucket, exactly the shape a job's upload
credential has (its bucket, a write deadline, usable as X-Upload-Token).
"""

from __future__ import annotations

import os
import secrets
import shutil
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import boto3
import pytest
import trustme
from botocore.config import Config
from django.conf import settings as django_settings

from storage.credentials import Credential
from tests.storage.server import serving

MOUNT = "/api/cloud/storage"
_WRITERS: dict[str, Credential] = {}


def writer_credential(access_key_id: str) -> Credential | None:
    """Test resolver: credentials made by the `writer` fixture (or, in a server process the
    test started, the one in CLOUDOPS_TEST_S3_WRITER as "key id:secret:bucket")."""
    if access_key_id in _WRITERS:
        return _WRITERS[access_key_id]
    key_id, _, rest = os.environ.get("CLOUDOPS_TEST_S3_WRITER", "").partition(":")
    secret, _, bucket = rest.partition(":")
    if key_id and key_id == access_key_id:
        return Credential(access_key_id=key_id, secret=secret, buckets=frozenset({bucket}), bearer=True, job_id=bucket)
    return None


@dataclass
class Endpoint:
    base: str
    ca: str | None

    @property
    def url(self) -> str:
        return self.base + MOUNT

    @property
    def https(self) -> bool:
        return self.base.startswith("https")

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """httpx's `verify` for this endpoint (trusting the test CA over HTTPS)."""
        return ssl.create_default_context(cafile=self.ca) if self.ca else True


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A self-signed CA and a server certificate for 127.0.0.1 / localhost."""
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    for pem in cert.cert_chain_pems[1:]:
        with (folder / "cert.pem").open("ab") as f:
            f.write(pem.bytes())
    return folder / "cert.pem", folder / "key.pem", folder / "ca.pem"


@pytest.fixture(scope="session")
def http_server() -> Iterator[Endpoint]:
    with serving() as base:
        yield Endpoint(base, None)


@pytest.fixture(scope="session")
def https_server(tls_files: tuple[Path, Path, Path]) -> Iterator[Endpoint]:
    cert, key, ca = tls_files
    with serving(cert=cert, key=key) as base:
        yield Endpoint(base, str(ca))


@pytest.fixture(params=["http", "https"])
def endpoint(request: pytest.FixtureRequest) -> Endpoint:
    """The live endpoint, once over HTTP and once over HTTPS (where boto3 sends aws-chunked)."""
    return request.getfixturevalue(f"{request.param}_server")


@pytest.fixture(autouse=True)
def _storage_env(transactional_db: None, settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    settings.S3_CREDENTIAL_RESOLVERS = [
        *django_settings.S3_CREDENTIAL_RESOLVERS,
        "tests.storage.conftest.writer_credential",
    ]
    settings.SIMPLETUNER_S3_MIN_FREE_BYTES = 0
    yield
    _WRITERS.clear()
    # The machine is shared: leave no test objects behind.
    shutil.rmtree(django_settings.OUTPUTS_DIR, ignore_errors=True)


@pytest.fixture
def writer() -> Callable[..., Credential]:
    def make(bucket: str | None = None, *, writable_until: datetime | None = None) -> Credential:
        bucket = bucket or "job-" + secrets.token_hex(6)
        access_key_id = "UT" + secrets.token_hex(10).upper()
        credential = Credential(
            access_key_id=access_key_id,
            secret=secrets.token_urlsafe(30),
            username="",
            buckets=frozenset({bucket}),
            writable_until=writable_until,
            bearer=True,
            job_id=bucket,
        )
        _WRITERS[access_key_id] = credential
        return credential

    return make


def expire(credential: Credential, when: datetime) -> Credential:
    updated = replace(credential, writable_until=when)
    _WRITERS[credential.access_key_id] = updated
    return updated


def bucket_of(credential: Credential) -> str:
    return next(iter(credential.buckets))


@pytest.fixture
def s3() -> Callable[..., object]:
    """A stock boto3 S3 client against the endpoint, path-style, no retries (errors surface)."""

    def make(endpoint: Endpoint, key_id: str, secret: str, **config: object) -> object:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint.url,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            verify=endpoint.ca if endpoint.https else None,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
        )

    return make


def client_for(s3: Callable[..., object], endpoint: Endpoint, credential: Credential, **config: object):  # type: ignore[no-untyped-def]
    return s3(endpoint, credential.access_key_id, credential.secret, **config)


def objects_on_disk(bucket: str) -> list[str]:
    root = Path(django_settings.OUTPUTS_DIR) / bucket
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def temp_files() -> list[Path]:
    tmp = Path(django_settings.OUTPUTS_DIR) / ".s3-tmp"
    return list(tmp.iterdir()) if tmp.exists() else []
