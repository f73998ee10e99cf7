"""Datasets a job names with `dataset`: an http(s) URL, or a .zip file or a directory under
SIMPLETUNER_DATASETS_DIR (relative path; nothing outside that directory can be named)."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings


def is_url(value: str) -> bool:
    return urlsplit(value).scheme in ("http", "https")


def validate_dataset(value: str) -> str:
    """Raise ValueError unless `value` is a URL or an existing dataset under the datasets dir."""
    if not value:
        return ""
    if is_url(value):
        if not urlsplit(value).hostname:
            raise ValueError("is not a valid URL")
        return value
    if "\x00" in value or "\\" in value or Path(value).is_absolute():
        raise ValueError(f"must be an http(s) URL or a path relative to {settings.SIMPLETUNER_DATASETS_DIR}")
    root = settings.SIMPLETUNER_DATASETS_DIR.resolve()
    path = (root / value).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"must stay inside {root}")
    if not (path.is_dir() or (path.is_file() and path.suffix.lower() == ".zip")):
        raise ValueError(f"no directory or .zip file named {value!r} in {root}")
    return value


def dataset_location(value: str) -> str:
    """The URL, or the absolute path on this machine."""
    if is_url(value):
        return value
    return str((settings.SIMPLETUNER_DATASETS_DIR / value).resolve())


@contextmanager
def dataset_archive(value: str) -> Iterator[Path]:
    """A .zip of the dataset for upload: the file itself, or a temporary archive of a directory
    (written to disk in chunks, so memory stays flat), removed afterwards."""
    path = Path(dataset_location(value))
    if path.is_file():
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="dataset-") as tmp:
        archive = Path(tmp) / f"{path.name}.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for item in sorted(path.rglob("*")):
                if item.is_file() and not item.is_symlink():
                    zf.write(item, item.relative_to(path))
        yield archive
