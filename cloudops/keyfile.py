"""Generated keys persisted under $SIMPLETUNER_HOME/config with mode 0600.

Used for SECRET_KEY, the server key and (later) the audit key when the operator sets none.
Must not import Django: settings.py uses it.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path


class KeyFileError(Exception):
    pass


def read_or_create_key(path: Path, nbytes: int = 48) -> str:
    """Read the key at `path`, creating it once if missing.

    The key is written to a private temporary file and hard-linked into place, so two
    processes starting together agree on one complete key: the loser of the race reads
    the winner's file. A key file readable by group or others is refused.
    """
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(nbytes) + "\n")
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    if path.stat().st_mode & 0o077:
        raise KeyFileError(f"{path} is readable by group or others; run: chmod 600 {path}")
    value = path.read_text().strip()
    if not value:
        raise KeyFileError(f"{path} is empty; delete it to generate a new key")
    return value
