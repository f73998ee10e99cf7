"""One page of a bucket listing: prefix, delimiter roll-up, markers and max-keys, as S3 does it."""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field

from storage import errors

MAX_KEYS = 1000


@dataclass
class Page:
    contents: list[tuple[str, os.stat_result]] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    last: str | None = None  # the last key or common prefix returned: where the next page starts


def max_keys(value: str | None) -> int:
    if value is None or value == "":
        return MAX_KEYS
    try:
        number = int(value)
    except ValueError:
        raise errors.InvalidArgument("max-keys must be an integer.", ArgumentName="max-keys") from None
    if number < 0:
        raise errors.InvalidArgument("max-keys must not be negative.", ArgumentName="max-keys")
    return min(number, MAX_KEYS)


def paginate(
    keys: list[tuple[str, os.stat_result]], *, prefix: str, delimiter: str, after: str | None, limit: int
) -> Page:
    """`keys` (sorted, all starting with `prefix`) as one page of entries after `after`.

    With a delimiter, every key containing it past the prefix rolls up into one common prefix,
    counted once against `limit`. An entry equal to or before `after` is skipped, so a
    continuation from a common prefix skips every key under it.
    """
    page = Page()
    if limit == 0:
        return page  # as S3: nothing asked for, nothing more to come (IsTruncated false)
    for key, st in keys:
        name, rolled = key, False
        if delimiter:
            at = key.find(delimiter, len(prefix))
            if at >= 0:
                name, rolled = key[: at + len(delimiter)], True
        if (after is not None and name <= after) or (rolled and page.prefixes and page.prefixes[-1] == name):
            continue
        if len(page.contents) + len(page.prefixes) >= limit:
            page.truncated = True
            break
        if rolled:
            page.prefixes.append(name)
        else:
            page.contents.append((key, st))
        page.last = name
    return page


def encode_token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode()


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise errors.InvalidArgument(
            "The continuation token provided is incorrect.", ArgumentName="continuation-token"
        ) from None
