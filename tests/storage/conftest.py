"""Fixtures for the S3 endpoint: a live server (HTTP and HTTPS), credentials and real clients.

`writer()` submits nothing to a provider but creates a real running job of the `local`
provider and returns its upload credential, as the server resolves it (its bucket is the
job id; `expire()` ends the job so the grace period applies).
"""

from __future__ import annotations

import shutil
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import boto3
import pytest
import trustme
from botocore.config import Config
from django.conf import settings as django_settings

from providers.config import provider_config_get
from providers.models import Job, JobStatus
from storage.credentials import Credential, job_credential
from tests.storage.server import serving

MOUNT = "/api/cloud/storage"


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
    settings.SIMPLETUNER_S3_MIN_FREE_BYTES = 0
    yield
    # The machine is shared: leave no test objects behind.
    shutil.rmtree(django_settings.OUTPUTS_DIR, ignore_errors=True)


@pytest.fixture
def writer(make_user) -> Callable[[], Credential]:  # type: ignore[no-untyped-def]
    owner = make_user("trainer")
    provider_config_get("local")

    def make() -> Credential:
        job = Job.objects.create(owner=owner, provider="local", status=JobStatus.RUNNING)
        credential = job_credential(job.upload_token)
        assert credential is not None
        return credential

    return make


def expire(credential: Credential, when: datetime) -> None:
    """End the credential's job so that its grace period ends at `when`."""
    grace = timedelta(seconds=django_settings.SIMPLETUNER_UPLOAD_GRACE_SECONDS)
    Job.objects.filter(id=credential.job_id).update(status=JobStatus.COMPLETED, completed_at=when - grace)


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
