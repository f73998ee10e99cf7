"""A job's output files for the admin's job page (settings.JOB_OUTPUTS): providers lists and
serves them through these two functions, since providers does not import storage."""

from __future__ import annotations

import os
from typing import BinaryIO

from providers.selectors import job_output_root
from storage import errors, store


def output_files(job_id: str) -> list[tuple[str, int]]:
    """(key, size) of every object in the job's bucket, in S3 order."""
    return [(key, st.st_size) for key, st in store.walk_keys(job_output_root(job_id), job_id, "")]


def output_open(job_id: str, key: str) -> tuple[BinaryIO, str]:
    """The object opened for reading and its content type; FileNotFoundError if there is none
    (or the key is no valid key: the same path checks as the S3 endpoint's)."""
    try:
        fd, info = store.open_object(job_output_root(job_id), job_id, key)
    except errors.S3Error:
        raise FileNotFoundError(key) from None
    return os.fdopen(fd, "rb"), info.content_type
