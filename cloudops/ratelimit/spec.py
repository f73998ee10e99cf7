"""Validating a custom rule's tuple form, apart from rules.py because settings.py uses it.

settings.py checks RATE_LIMIT_RULES while Django is still loading the settings, so this module
imports nothing of Django. rules.py cannot be that module: its default rules hold the preset
limiters, and importing them loads the state backend's selection and django.http (some 160
Django modules) from inside the settings module that Django is still reading.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

RuleSpec = tuple[str, int, float, "frozenset[str] | None", "bool | None"]


def parse_rule_spec(spec: Sequence[Any]) -> RuleSpec:
    """(pattern, calls, period, methods[, fail_open]) checked and normalised; ValueError names the problem."""
    if isinstance(spec, str | bytes) or not 4 <= len(spec) <= 5:
        raise ValueError(f"rate-limit rule {spec!r}: expected (pattern, calls, period, methods[, fail_open])")
    pattern, calls, period, methods = spec[:4]
    try:
        re.compile(pattern)
    except (re.error, TypeError) as exc:
        raise ValueError(f"rate-limit rule {spec!r}: pattern is not a regular expression ({exc})") from None
    if isinstance(calls, bool) or not isinstance(calls, int) or calls < 1:
        raise ValueError(f"rate-limit rule {spec!r}: calls must be an integer >= 1")
    if isinstance(period, bool) or not isinstance(period, int | float) or period <= 0:
        raise ValueError(f"rate-limit rule {spec!r}: period must be a number of seconds > 0")
    if methods is not None and (isinstance(methods, str) or not all(isinstance(m, str) for m in methods)):
        raise ValueError(f"rate-limit rule {spec!r}: methods must be a list of method names or null")
    fail_open = spec[4] if len(spec) == 5 else None
    if fail_open is not None and not isinstance(fail_open, bool):
        raise ValueError(f"rate-limit rule {spec!r}: fail_open must be true, false or null")
    method_set = frozenset(m.upper() for m in methods) if methods is not None else None
    return pattern, calls, float(period), method_set, fail_open
