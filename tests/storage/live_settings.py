"""Settings for server processes started by storage tests: the test settings plus the
test-only writer credential (see tests/storage/conftest.py), passed in CLOUDOPS_TEST_S3_WRITER."""

from __future__ import annotations

from tests.settings import *  # noqa: F403

S3_CREDENTIAL_RESOLVERS = [*S3_CREDENTIAL_RESOLVERS, "tests.storage.conftest.writer_credential"]  # noqa: F405
