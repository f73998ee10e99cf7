"""URL converters: a path segment that cannot name anything we store is a 404 at routing.

Without them a job id such as `%00` reached the database, and PostgreSQL refuses NUL in
text (a 500); an integer id beyond 64 bits overflowed the column type.
"""

from __future__ import annotations

# Route labels (access logs, metrics `endpoint`) show these converters as the built-in ones
# they replaced, so dashboards keyed on `GET_/api/cloud/jobs/<str:job_id>` keep working.
LABEL_AS = {"job_id": "str", "provider": "str", "id": "int"}


class JobIdConverter:
    """Job ids are S3 bucket names: lowercase letters, digits and hyphens, 1-63 characters."""

    regex = r"[a-z0-9][a-z0-9-]{0,62}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class ProviderNameConverter(JobIdConverter):
    """Provider names as registered in PROVIDER_CLIENTS: lowercase, digits, `-` and `_`."""

    regex = r"[a-z0-9][a-z0-9_-]{0,31}"


class IdConverter:
    """A database id: a positive integer that fits a 64-bit column (at most 18 digits)."""

    regex = r"[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)
