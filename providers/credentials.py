"""Credentials and URLs handed to jobs: upload credentials, webhook URL and signing secret.

Nothing here is stored: the upload secret and the local webhook secrets are derived from the
server key (cloudops.keys), so the database alone never reveals them. Never log or return
these values from the API.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from django.conf import settings

from cloudops.keys import derive, derive_token
from providers.models import Job, ProviderConfig

STORAGE_PATH = "/api/cloud/storage"
# S3 request signing needs a region; the storage endpoint accepts any, jobs use this one.
S3_REGION = "us-east-1"


@dataclass(frozen=True)
class UploadCredentials:
    access_key_id: str
    secret_access_key: str
    bucket: str
    endpoint_url: str
    region: str = S3_REGION

    def __repr__(self) -> str:  # never print the secret by accident
        return f"UploadCredentials(access_key_id={self.access_key_id!r}, bucket={self.bucket!r}, ...)"


def _provider_config(job: Job) -> ProviderConfig | None:
    return ProviderConfig.objects.filter(name=job.provider).first()


def public_base_url(provider_config: ProviderConfig | None) -> str:
    """Where jobs reach this server: the provider's s3_public_url, else SIMPLETUNER_PUBLIC_URL,
    else the server's own local URL (fine for local jobs, unreachable for cloud ones)."""
    configured = provider_config.s3_public_url if provider_config is not None else ""
    return (configured or settings.SIMPLETUNER_PUBLIC_URL or settings.SIMPLETUNER_LOCAL_URL).rstrip("/")


def has_public_url(provider_config: ProviderConfig | None) -> bool:
    """Whether a cloud job could reach us (a public URL is configured, not just the local one)."""
    return bool(
        (provider_config.s3_public_url if provider_config is not None else "") or settings.SIMPLETUNER_PUBLIC_URL
    )


def webhook_url(provider_config: ProviderConfig) -> str:
    return f"{public_base_url(provider_config)}/api/webhooks/{provider_config.name}"


def job_upload_secret(job: Job) -> str:
    """The job's S3 secret access key, recomputed from the server key and its upload token."""
    return derive_token("upload", job.upload_token)


def job_upload_credentials(job: Job, provider_config: ProviderConfig | None = None) -> UploadCredentials:
    provider_config = provider_config if provider_config is not None else _provider_config(job)
    return UploadCredentials(
        access_key_id=job.upload_token,
        secret_access_key=job_upload_secret(job),
        bucket=job.id,
        endpoint_url=job_endpoint_url(provider_config),
    )


def job_endpoint_url(provider_config: ProviderConfig | None) -> str:
    """The S3 endpoint jobs are given: the provider's s3_endpoint_url (e.g. the root of a
    SIMPLETUNER_S3_HOSTS host, for clients that cannot sign for a path), else the path mount
    under the public base URL."""
    configured = provider_config.s3_endpoint_url if provider_config is not None else ""
    return configured.rstrip("/") or public_base_url(provider_config) + STORAGE_PATH


def job_upload_bearer(upload_token: str) -> str:
    """The job's legacy `X-Upload-Token` value: `<upload token>.<proof>`.

    The upload token alone (the access key id) is in every URL the job presigns, so it cannot
    be a bearer credential; the proof is derived from the server key like the upload secret
    (nothing stored) and never appears in a URL. The token names its job, so the server
    resolves it with one indexed lookup and compares the whole value with compare_digest.
    """
    return f"{upload_token}.{derive_token('upload-bearer', upload_token)}"


def local_webhook_secret(job_id: str) -> str:
    """The Standard Webhooks secret (`whsec_<base64>`) one local job signs its webhooks with.

    One per job, derived from the server key and the job id (nothing stored): a job knows
    only its own, so it cannot report anything about another job. The webhook endpoint
    derives it again from the job the delivery names.
    """
    return "whsec_" + base64.b64encode(derive("webhook", "local", job_id)).decode()
