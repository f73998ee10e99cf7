"""Settings for benchmark servers: production settings plus one bench upload credential.

Until job upload credentials exist, the benchmark authenticates with a credential shaped
like a job's (one bucket, writable), given as BENCH_S3_WRITER="key id:secret:bucket".
"""

from __future__ import annotations

from cloudops.settings import *  # noqa: F403

S3_CREDENTIAL_RESOLVERS = [*S3_CREDENTIAL_RESOLVERS, "bench.settings.bench_writer"]  # noqa: F405


def bench_writer(access_key_id: str):  # type: ignore[no-untyped-def]
    import os

    from storage.credentials import Credential

    key_id, _, rest = os.environ.get("BENCH_S3_WRITER", "").partition(":")
    secret, _, bucket = rest.partition(":")
    if key_id and access_key_id == key_id:
        return Credential(access_key_id=key_id, secret=secret, buckets=frozenset({bucket}), job_id=bucket)
    return None
