"""The one JSON input boundary: every JSON body a client sends is parsed here, with limits.

A request body is accepted only if it is UTF-8 JSON that fits what the server stores and
shows again: nesting at most MAX_DEPTH levels deep; numbers finite (no NaN, Infinity or
1e999) and integers within a signed 64-bit range (what every database column holds); text
(keys and values) without NUL or lone surrogates (PostgreSQL refuses NUL, and a lone
surrogate cannot be encoded back to UTF-8, so a stored one would break every response that
shows it). Anything else is an InvalidJSON whose message names the field, e.g.
`config.steps: integers must be between -2^63 and 2^63-1`, and the API answers 400.

DRF parses request bodies with StrictJSONParser; the webhook endpoint calls parse_json.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 64
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# Longest integer literal worth converting: 2^63 has 19 digits, plus a sign.
_MAX_INT_CHARS = 20
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


class InvalidJSON(ValueError):
    """A body that is not JSON within the limits; the message names the field and the rule."""


class _OutOfRange:
    """An integer literal too large to store, kept as text so the walk can name its field."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


def _parse_int(literal: str) -> int | _OutOfRange:
    if len(literal.lstrip("-")) >= _MAX_INT_CHARS:
        return _OutOfRange(literal)
    value = int(literal)
    return value if INT_MIN <= value <= INT_MAX else _OutOfRange(literal)


def _parse_constant(name: str) -> float:
    # NaN, Infinity and -Infinity are not JSON; Python's decoder accepts them unless told not to.
    raise InvalidJSON(f"{name} is not a JSON number; numbers must be finite")


def _field(path: str) -> str:
    return path or "body"


def _key(path: str, key: str) -> str:
    shown = key if key.isidentifier() else json.dumps(key)
    return f"{path}.{shown}" if path else shown


def _check_text(text: str, path: str) -> None:
    bad = _BAD_TEXT.search(text)
    if bad is None:
        return
    what = "NUL characters" if bad.group() == "\x00" else "lone surrogates (invalid Unicode)"
    raise InvalidJSON(f"{_field(path)}: text must not contain {what}")


def _check(value: Any, path: str, depth: int) -> None:
    """Walk the parsed value once (`depth` containers enclose it): depth, numbers and text,
    naming the first bad field."""
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        raise InvalidJSON(f"{_field(path)}: nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            # The key is checked before it is shown in a field name (it may be the bad text).
            _check_text(key, f"{_field(path)} (a key)")
            _check(item, _key(path, key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]" if path else f"[{index}]", depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidJSON(f"{_field(path)}: numbers must be finite (this one overflows a double)")
    elif isinstance(value, _OutOfRange):
        raise InvalidJSON(f"{_field(path)}: integers must be between -2^63 and 2^63-1")


def storable_text(text: str) -> str:
    """Provider-sourced text (logs, errors) with NUL and lone surrogates replaced by U+FFFD:
    a provider's output is recorded as it is, not refused, but must fit every database."""
    return _BAD_TEXT.sub("\ufffd", text)


def parse_json(data: bytes | str) -> Any:
    """Parse a client's JSON body within the limits above; raise InvalidJSON otherwise."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidJSON(f"the body is not UTF-8 text (byte {exc.start})") from None
    try:
        value = json.loads(data, parse_int=_parse_int, parse_constant=_parse_constant)
    except RecursionError:
        # The C decoder refuses deep nesting by itself; the walk below sets the real limit.
        raise InvalidJSON(f"body: nested more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError as exc:
        raise InvalidJSON(f"not valid JSON: {exc}") from None
    _check(value, "", 0)
    return value


class StrictJSONParser(JSONParser):
    """DRF's JSON parser on the limits of parse_json (the API's DEFAULT_PARSER_CLASSES)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        raw = stream.read() if stream is not None else b""
        if encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise ParseError(f"JSON bodies must be UTF-8 (the request says charset={encoding})")
        try:
            return parse_json(raw)
        except InvalidJSON as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
