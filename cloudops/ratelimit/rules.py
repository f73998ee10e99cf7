"""The middleware's rules: which limit applies to a request, matched in order.

A rule is (pattern, calls, period, methods[, fail_open]): `pattern` is a regular expression
matched at the start of the path, `methods` None means all methods. The first rule whose
pattern and method match decides; requests no rule matches fall to the default
(RATE_LIMIT_CALLS per RATE_LIMIT_PERIOD). Each rule counts in its own bucket per client, so
five failed logins do not use up the budget for listing jobs. The tuple form is validated by
spec.parse_rule_spec.

One exception to "first match only": every way to present a password (PASSWORD_ENTRY_POINTS)
also spends the login rule's bucket, so a client refused at the API login cannot go on
guessing through the admin's form.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.conf import settings

from cloudops.ratelimit.limiter import RateLimiter, s3_rate_limiter, webhook_rate_limiter
from cloudops.ratelimit.spec import parse_rule_spec

# Keying: "ip" counts per client IP; "storage" per job credential when one is presented.
KEY_IP = "ip"
KEY_STORAGE = "storage"


@dataclass(frozen=True)
class Rule:
    pattern: str
    calls: int
    period: float
    methods: frozenset[str] | None = None
    # None: RATE_LIMIT_FAIL_OPEN decides; the auth rules fail closed explicitly.
    fail_open: bool | None = None
    name: str = ""
    key: str = KEY_IP
    preset: RateLimiter | None = field(default=None, compare=False)

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern)

    def matches(self, path: str, method: str) -> bool:
        return (self.methods is None or method in self.methods) and self.regex.match(path) is not None

    def fails_open(self) -> bool:
        return settings.RATE_LIMIT_FAIL_OPEN if self.fail_open is None else self.fail_open

    @cached_property
    def limiter(self) -> RateLimiter:
        if self.preset is not None:
            return self.preset
        return RateLimiter(self.calls, self.period, self.name, fail_open=self.fails_open())


def preset_rule(pattern: str, preset: RateLimiter, *, key: str = KEY_IP) -> Rule:
    """A rule that counts through `preset`, with the preset's limit, window and name."""
    return Rule(pattern, preset.max_requests, preset.window_seconds, name=preset.key_prefix, key=key, preset=preset)


_POST = frozenset({"POST"})
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(r"^/api/auth/login/?$", 5, 60, _POST, fail_open=False, name="auth-login"),
    Rule(r"^/api/auth/register/?$", 3, 60, _POST, fail_open=False, name="auth-register"),
    Rule(r"^/api/auth/api-keys/?$", 10, 60, _POST, fail_open=False, name="auth-api-keys"),
    # Both submit routes: POST /api/cloud/jobs and POST /api/cloud/jobs/submit.
    Rule(r"^/api/cloud/jobs(/submit)?/?$", 20, 60, _POST, name="job-submit"),
    Rule(r"^/api/cloud/jobs/[^/]+/cancel/?$", 30, 60, _POST, name="job-cancel"),
    preset_rule(r"^/api/webhooks(/|$)", webhook_rate_limiter),
    preset_rule(r"^/api/cloud/storage(/|$)", s3_rate_limiter, key=KEY_STORAGE),
    Rule(r"^/api/quotas(/|$)", 30, 60, name="quotas"),
    # Writes only: each can send a request to a destination (a test event, a redelivery) or
    # rotate a secret; reading the delivery log falls to the default rule like other reads.
    Rule(r"^/api/cloud/notifications(/|$)", 30, 60, _WRITES, name="notifications"),
)


# Every way to present a password (the API's login and registration, the admin's login and
# password change forms), as POST paths. Besides its own rule, each spends the budget of the
# login rule: whichever rule applies to POST LOGIN_PATH, so an operator's custom login rule
# covers them all. The browsable API's login (rest_framework.urls) is not routed; a test fails
# if a login or password form appears under another path.
LOGIN_PATH = "/api/auth/login"
PASSWORD_ENTRY_POINTS = (
    r"^/api/auth/login/?$",
    r"^/api/auth/register/?$",  # keeps its own, stricter rule too
    r"^/admin/login/?$",
    r"^/admin/password_change/?$",  # the form checks the old password
)
_PASSWORD_ENTRY = re.compile("|".join(f"(?:{pattern})" for pattern in PASSWORD_ENTRY_POINTS))


def presents_password(path: str, method: str) -> bool:
    return method == "POST" and _PASSWORD_ENTRY.match(path) is not None


def custom_rule(spec: Sequence[Any] | Rule) -> Rule:
    """A rule from the tuple form (pattern, calls, period, methods[, fail_open])."""
    if isinstance(spec, Rule):
        return spec
    pattern, calls, period, methods, fail_open = parse_rule_spec(spec)
    digest = hashlib.sha256(f"{pattern}|{sorted(methods or [])}".encode()).hexdigest()[:10]
    return Rule(pattern, calls, period, methods, fail_open, name=f"custom-{digest}")


def build_rules(custom: Iterable[Sequence[Any]], calls: int, period: float) -> tuple[Rule, ...]:
    """Custom rules first (so they can take a path from a default rule), then the defaults,
    then the catch-all default rule."""
    rules = tuple(custom_rule(spec) for spec in custom)
    fallback = Rule(r"", calls, period, name="default") if calls > 0 else None
    return rules + DEFAULT_RULES + ((fallback,) if fallback else ())


# Never limited. Probes and the event stream must not be throttled by a busy client, and
# the provider *list* is read by every UI poll; configuration changes under
# /api/cloud/providers/... are limited like everything else.
EXCLUDED_PREFIXES = (
    "/health",
    "/api/cloud/health",
    "/api/events/stream",
    "/static/",
    "/api/cloud/hints",
    "/api/users/me",
)
EXCLUDED_EXACT = {("/api/cloud/providers", "GET"), ("/api/cloud/providers", "HEAD")}


def is_excluded(path: str, method: str) -> bool:
    return (path.rstrip("/") or "/", method) in EXCLUDED_EXACT or path.startswith(EXCLUDED_PREFIXES)


def first_match(rules: Iterable[Rule], path: str, method: str) -> Rule | None:
    return next((rule for rule in rules if rule.matches(path, method)), None)
