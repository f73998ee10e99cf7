"""Every way to present a password shares the login budget (SPEC 18, review finding 1).

The attack: once /api/auth/login answers 429, the same client went on guessing `admin`'s
password through /admin/login/ (200 each) and finally logged in (302).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import AbstractUser
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.exceptions import NoReverseMatch

from audit.models import AuditEntry
from cloudops.ratelimit.middleware import RateLimitMiddleware
from cloudops.ratelimit.rules import presents_password
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

CLIENT = "203.0.113.50"
EXCEEDED = {"detail": "Rate limit exceeded. Please try again later."}


def post(client: Client, path: str, data: dict[str, str] | None = None, ip: str = CLIENT, **extra: str) -> HttpResponse:
    return client.post(path, data or {}, REMOTE_ADDR=ip, **extra)


def api_login(client: Client, ip: str = CLIENT) -> HttpResponse:
    return client.post(
        "/api/auth/login", {"username": "olivia", "password": "guess"}, content_type="application/json", REMOTE_ADDR=ip
    )


def exhaust_api_login(client: Client) -> None:
    for _ in range(5):
        assert api_login(client).status_code == 401
    assert api_login(client).status_code == 429


def test_the_admin_form_is_refused_once_the_api_login_is_exhausted(olivia: AbstractUser) -> None:
    client = Client()
    exhaust_api_login(client)
    guess = post(client, "/admin/login/", {"username": "olivia", "password": "guess"})
    assert guess.status_code == 429
    assert guess.json() == EXCEEDED
    right = post(client, "/admin/login/", {"username": "olivia", "password": PASSWORD})
    assert right.status_code == 429
    assert "sessionid" not in right.cookies
    assert client.get("/admin/", REMOTE_ADDR=CLIENT).status_code == 302  # still logged out
    assert not AuditEntry.objects.filter(event_type="auth.login.success").exists()


def test_guesses_through_the_admin_form_use_up_the_api_login_budget(olivia: AbstractUser) -> None:
    client = Client()
    for n in range(5):
        guess = post(client, "/admin/login/", {"username": "olivia", "password": f"guess{n}"})
        assert guess.status_code == 200
        assert guess["X-RateLimit-Limit"] == "5"
        assert guess["X-RateLimit-Remaining"] == str(4 - n)
    assert post(client, "/admin/login/", {"username": "olivia", "password": PASSWORD}).status_code == 429
    assert api_login(client).status_code == 429
    # Another client keeps its own budget.
    assert post(client, "/admin/login/", {"username": "olivia", "password": "x"}, ip="203.0.113.51").status_code == 200


def test_the_admin_password_change_shares_the_login_budget(olivia: AbstractUser) -> None:
    client = Client()
    client.force_login(olivia)
    exhaust_api_login(client)
    data = {
        "old_password": PASSWORD,
        "new_password1": "another long passphrase",
        "new_password2": "another long passphrase",
    }
    refused = post(client, "/admin/password_change/", data)
    assert refused.status_code == 429
    olivia.refresh_from_db()
    assert olivia.check_password(PASSWORD)
    # Looking at the form is not a password presentation.
    assert client.get("/admin/password_change/", REMOTE_ADDR=CLIENT).status_code == 200


@override_settings(SIMPLETUNER_ALLOW_REGISTRATION=True)
def test_registration_spends_its_own_budget_and_the_login_budget() -> None:
    client = Client()
    for n in range(3):
        body = {"username": f"user{n}", "password": "a sufficiently long passphrase"}
        response = client.post("/api/auth/register", body, content_type="application/json", REMOTE_ADDR=CLIENT)
        assert response.status_code == 201
        # The stricter budget is the one the client sees.
        assert (response["X-RateLimit-Limit"], response["X-RateLimit-Remaining"]) == ("3", str(2 - n))
    assert api_login(client).status_code == 401
    assert api_login(client).status_code == 401
    assert api_login(client).status_code == 429


def test_a_refusal_at_the_admin_form_is_audited_naming_the_form_and_the_login_rule() -> None:
    client = Client()
    for _ in range(5):
        assert post(client, "/admin/login/", {"username": "olivia", "password": "x"}).status_code == 200
    assert (
        post(client, "/admin/login/", {"username": "olivia", "password": "x"}, HTTP_USER_AGENT="hydra").status_code
        == 429
    )
    entry = AuditEntry.objects.get(event_type="rate_limited")
    assert entry.actor_ip == CLIENT
    assert (entry.details["path"], entry.details["rule"]) == ("/admin/login/", r"^/api/auth/login/?$")


def test_loopback_clients_are_not_limited_on_the_admin_form_either(olivia: AbstractUser) -> None:
    client = Client()
    for _ in range(7):
        response = post(client, "/admin/login/", {"username": "olivia", "password": "x"}, ip="127.0.0.1")
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response


@override_settings(RATE_LIMIT_RULES=[[r"^/api/auth/login$", 2, 60, ["POST"]]])
def test_a_custom_login_rule_is_the_budget_every_entry_point_shares(olivia: AbstractUser) -> None:
    client = Client()
    assert post(client, "/admin/login/", {"username": "olivia", "password": "x"})["X-RateLimit-Limit"] == "2"
    assert api_login(client).status_code == 401
    assert post(client, "/admin/login/", {"username": "olivia", "password": "x"}).status_code == 429


@pytest.mark.django_db(transaction=True)
async def test_the_async_stack_spends_the_login_budget_too() -> None:
    from asgiref.sync import sync_to_async
    from django.db import connections

    async def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    middleware = RateLimitMiddleware(view)
    factory = RequestFactory()
    for _ in range(5):
        assert (await middleware(factory.post("/api/auth/login", REMOTE_ADDR=CLIENT))).status_code == 200
    refused = await middleware(factory.post("/admin/login/", REMOTE_ADDR=CLIENT))
    assert refused.status_code == 429
    assert refused["X-RateLimit-Limit"] == "5"
    admitted = await middleware(factory.get("/admin/login/", REMOTE_ADDR=CLIENT))
    assert admitted.status_code == 200 and admitted["X-RateLimit-Limit"] == "100"
    await sync_to_async(connections.close_all)()


# --- Which routes present a password ------------------------------------------------------------

# Routes whose view name speaks of logins or passwords, and whether a POST there presents a
# password. A new one fails the test below until it is classified here (and, if it presents
# a password, added to rules.PASSWORD_ENTRY_POINTS).
PASSWORD_ROUTES = {
    "auth-login": True,
    "admin:login": True,
    "admin:password_change": True,
    "admin:password_change_done": False,
    # Sets another user's password with auth.change_user; nothing is checked, so nothing guessed.
    "admin:auth_user_password_change": False,
}


def _named_routes(patterns: list, namespace: str = "") -> Iterator[tuple[str, str]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _named_routes(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            callback = pattern.callback
            view_name = getattr(getattr(callback, "view_class", None), "__name__", callback.__name__)
            yield f"{namespace}{pattern.name}", view_name


def test_every_login_or_password_route_is_classified() -> None:
    found = {
        name
        for name, view in _named_routes(get_resolver().url_patterns)
        if "login" in view.lower() or "password" in view.lower()
    }
    assert found == set(PASSWORD_ROUTES)


@pytest.mark.parametrize(("name", "presents"), [*PASSWORD_ROUTES.items(), ("auth-register", True)])
def test_each_password_route_is_a_password_entry_point(name: str, presents: bool) -> None:
    kwargs = {"id": 1} if name == "admin:auth_user_password_change" else {}
    assert presents_password(reverse(name, kwargs=kwargs), "POST") is presents


def test_the_browsable_api_login_is_not_routed() -> None:
    with pytest.raises(NoReverseMatch):
        reverse("rest_framework:login")
    assert Client().get("/api-auth/login/").status_code == 404
