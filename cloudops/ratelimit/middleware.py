"""RateLimitMiddleware: per-client limits on every request, before any view work is done.

Sits right after RequestContextMiddleware (so refusals carry a request id and an access-log
line) and before sessions and authentication (so a flood costs one state check, not a
session load). It keys on cloudops.net.client_ip, never on a forwarding header itself, and
it runs for the S3 endpoint too: cloudops.bodies keeps Django's middleware stack.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, JsonResponse

from cloudops.middleware import DualModeMiddleware, GetResponse
from cloudops.net import client_ip, is_loopback
from cloudops.ratelimit.backends.base import BackendUnavailable, Decision
from cloudops.ratelimit.keys import RequestKey, request_key_for
from cloudops.ratelimit.limiter import COUNTED_ATTR, Clock, log_outage
from cloudops.ratelimit.rules import (
    LOGIN_PATH,
    Rule,
    build_rules,
    first_match,
    is_excluded,
    presents_password,
)
from cloudops.ratelimit.violations import violation_record

EXCEEDED = "Rate limit exceeded. Please try again later."
UNAVAILABLE = "Rate limiting is temporarily unavailable. Please try again later."
# A fail-closed refusal during an outage: how long clients should wait before retrying.
OUTAGE_RETRY_AFTER = 5
# Which rules apply to a method and path is remembered for this many paths of at most this
# length (then forgotten all at once): a dict lookup instead of matching every rule.
ROUTE_CACHE_SIZE = 4096
ROUTE_CACHE_PATH_LENGTH = 200

# The rules that limit a request, each with the registered key it spends (None: the client IP).
Applicable = tuple[tuple[Rule, RequestKey | None], ...]


@dataclass(frozen=True)
class Verdict:
    decision: Decision | None  # None: the backend was down
    refused: HttpResponseBase | None


class RateLimitMiddleware(DualModeMiddleware):
    """Per-client limits by rule. Arguments default to the settings RATE_LIMIT_CALLS,
    RATE_LIMIT_PERIOD, RATE_LIMIT_RULES and RATE_LIMIT_AUDIT; `configure(...)` returns a
    subclass with other defaults, for listing in MIDDLEWARE."""

    def __init__(
        self,
        get_response: GetResponse,
        *,
        calls: int | None = None,
        period: float | None = None,
        rules: Iterable[Sequence[Any]] | None = None,
        enable_audit: bool | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(get_response)
        calls = settings.RATE_LIMIT_CALLS if calls is None else calls
        period = settings.RATE_LIMIT_PERIOD if period is None else period
        self.enabled = calls > 0
        self.rules: tuple[Rule, ...] = build_rules(settings.RATE_LIMIT_RULES if rules is None else rules, calls, period)
        self.enable_audit = settings.RATE_LIMIT_AUDIT if enable_audit is None else enable_audit
        # The budget every password entry point also spends (see rules.PASSWORD_ENTRY_POINTS).
        self.login_rule = first_match(self.rules, LOGIN_PATH, "POST")
        self.clock = clock
        self._routes: dict[tuple[str, str], Applicable] = {}

    @classmethod
    def configure(cls, **options: Any) -> type[RateLimitMiddleware]:
        """A subclass with these constructor defaults: `MyLimits = RateLimitMiddleware.configure(calls=...)`."""

        class Configured(cls):  # type: ignore[valid-type, misc]
            def __init__(self, get_response: GetResponse) -> None:
                super().__init__(get_response, **options)

        return Configured

    def sync_call(self, request: HttpRequest) -> HttpResponseBase:
        verdict = self.evaluate(request)
        if verdict is not None and verdict.refused is not None:
            return verdict.refused
        response = self.get_response(request)
        return with_headers(response, verdict)  # type: ignore[arg-type]

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        verdict = await self.aevaluate(request)
        if verdict is not None and verdict.refused is not None:
            return verdict.refused
        response = await self.get_response(request)  # type: ignore[misc]
        return with_headers(response, verdict)

    def _applies(self, request: HttpRequest) -> Applicable:
        """The rules limiting this request, each with the registered key it spends (None: the
        client IP): the first match and, when the request presents a password, the login
        rule too. Empty when disabled, excluded, or real localhost."""
        if not self.enabled:
            return ()
        method, path = request.method or "GET", request.path
        applicable = self._routes.get((method, path))
        if applicable is None:
            applicable = self._route(method, path)
        if not applicable or is_loopback(client_ip(request)):
            return ()
        return applicable

    def _route(self, method: str, path: str) -> Applicable:
        """`_applies` for a method and path, before the client is known. Remembered for short
        paths (most requests repeat a few), so a request does not match every rule again."""
        if is_excluded(path, method):
            applicable: Applicable = ()
        else:
            rule = first_match(self.rules, path, method)
            rules: tuple[Rule, ...] = () if rule is None else (rule,)
            if self.login_rule is not None and rule is not self.login_rule and presents_password(path, method):
                rules += (self.login_rule,)
            applicable = tuple((rule, request_key_for(rule.key, path)) for rule in rules)
        if len(path) <= ROUTE_CACHE_PATH_LENGTH:
            if len(self._routes) >= ROUTE_CACHE_SIZE:
                self._routes.clear()
            self._routes[(method, path)] = applicable
        return applicable

    def evaluate(self, request: HttpRequest) -> Verdict | None:
        """Each applicable rule in turn; the first refusal ends it. A request the login rule
        refuses has still been counted by its own rule: both are budgets of the same client,
        so what that client loses is its own request."""
        verdict = None
        for rule, keyed in self._applies(request):
            verdict = tighter(verdict, self._evaluate_rule(request, rule, keyed))
            if verdict.refused is not None:
                break
        return verdict

    async def aevaluate(self, request: HttpRequest) -> Verdict | None:
        verdict = None
        for rule, keyed in self._applies(request):
            verdict = tighter(verdict, await self._aevaluate_rule(request, rule, keyed))
            if verdict.refused is not None:
                break
        return verdict

    def _evaluate_rule(self, request: HttpRequest, rule: Rule, keyed: RequestKey | None) -> Verdict:
        ip = client_ip(request) or "unknown"
        key = keyed.key(request, ip) if keyed is not None else ip
        try:
            decision = rule.limiter.hit_sync(key, now=self._now())
        except BackendUnavailable as exc:
            return self._outage(rule, exc)
        return self._conclude(request, rule, ip, decision)

    async def _aevaluate_rule(self, request: HttpRequest, rule: Rule, keyed: RequestKey | None) -> Verdict:
        """`_evaluate_rule` for the async stack: a backend with a native async client (Redis)
        is asked from the event loop; only what needs the ORM goes through a worker thread."""
        if keyed is not None:  # such keys may query the database
            return await sync_to_async(self._evaluate_rule)(request, rule, keyed)
        ip = client_ip(request) or "unknown"
        try:
            decision = await rule.limiter.hit(ip, now=self._now())
        except BackendUnavailable as exc:
            return self._outage(rule, exc)
        if decision.allowed:
            return self._conclude(request, rule, ip, decision)
        return await sync_to_async(self._conclude)(request, rule, ip, decision)  # audits: the ORM

    def _now(self) -> float | None:
        return self.clock() if self.clock is not None else None

    @staticmethod
    def _outage(rule: Rule, exc: BackendUnavailable) -> Verdict:
        fail_open = rule.fails_open()
        log_outage(exc, fail_open=fail_open, where=rule.name)
        return Verdict(None, None if fail_open else outage_response())

    def _conclude(self, request: HttpRequest, rule: Rule, ip: str, decision: Decision) -> Verdict:
        # Endpoints asking the same limiter (check_request) get this verdict, not a second count.
        request.__dict__.setdefault(COUNTED_ATTR, {})[rule.limiter.key_prefix] = decision
        if decision.allowed:
            return Verdict(decision, None)
        if self.enable_audit:
            violation_record(request=request, ip=ip, rule=rule, decision=decision)
        return Verdict(decision, refusal(decision))


def tighter(current: Verdict | None, new: Verdict) -> Verdict:
    """Of two rules' verdicts, the one the client sees: a refusal, else the smaller budget left."""
    if current is None or new.refused is not None or current.decision is None:
        return new
    if new.decision is None or current.decision.remaining <= new.decision.remaining:
        return current
    return new


def rate_headers(decision: Decision) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(math.ceil(decision.reset_at - 1e-9)),
    }


def with_headers(response: HttpResponseBase, verdict: Verdict | None) -> HttpResponseBase:
    if verdict is not None and verdict.decision is not None:
        for name, value in rate_headers(verdict.decision).items():
            response[name] = value
    return response


def refusal(decision: Decision) -> JsonResponse:
    response = JsonResponse({"detail": EXCEEDED}, status=429)
    response["Retry-After"] = str(decision.retry_after)
    for name, value in rate_headers(decision).items():
        response[name] = value
    return response


def outage_response() -> JsonResponse:
    response = JsonResponse({"detail": UNAVAILABLE}, status=503)
    response["Retry-After"] = str(OUTAGE_RETRY_AFTER)
    return response
