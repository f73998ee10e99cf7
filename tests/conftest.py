"""Shared fixtures: named personas and API clients authenticated as them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Permission
from django.test import Client
from rest_framework.test import APIClient

from cloudops.apikeys import api_key_create

# Fixtures that tests in more than one directory use. pytest reads pytest_plugins only here,
# in the root conftest; autouse fixtures stay in the conftest of the directory they serve.
pytest_plugins = [
    "tests.fakes.replicate",
    "tests.metrics.busy",
    "tests.providers.cleanup",
    "tests.webhooks.deliveries",
]

PASSWORD = "correct horse battery staple"


class ServerErrors(logging.Handler):
    """Collects what a server must never log for a test's requests: a 500 answer (the access
    log line, or Django's own `django.request` record) or an error with a traceback."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        status = getattr(record, "status", None) if record.name == "simpletuner.cloud.access" else None
        status = getattr(record, "status_code", status) if record.name == "django.request" else status
        if status == 500 or (record.levelno >= logging.ERROR and record.exc_info):
            self.found.append(
                f"{record.name}: {record.getMessage()}" + (" (with traceback)" if record.exc_info else "")
            )


@pytest.fixture(autouse=True)
def _no_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test fails on a 500 or a logged traceback, in the test process (Django's test
    client, in-process servers, background threads). Server processes a test starts are
    checked by tests.server.live.running. A test that provokes one on purpose says so with
    @pytest.mark.server_errors_expected("why")."""
    handler = ServerErrors()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
    if handler.found and request.node.get_closest_marker("server_errors_expected") is None:
        pytest.fail("the server logged a 500 or a traceback:\n" + "\n".join(handler.found[:20]), pytrace=False)


@pytest.fixture(autouse=True)
def _close_rate_limit_connections() -> Iterator[None]:
    """Rate-limit checks outside a test transaction use pooled connections that stay open;
    none may outlive its test (PostgreSQL cannot flush or drop a database with sessions on it)."""
    yield
    from cloudops.ratelimit.backends.sqlpool import close_pooled_connections

    close_pooled_connections()


@pytest.fixture
def make_user(db: None) -> Callable[..., AbstractUser]:
    def make(username: str, *, staff: bool = False, superuser: bool = False) -> AbstractUser:
        user_model = get_user_model()
        return user_model.objects.create_user(
            username=username, password=PASSWORD, is_staff=staff or superuser, is_superuser=superuser
        )

    return make


@pytest.fixture
def alice(make_user: Callable[..., AbstractUser]) -> AbstractUser:
    """An ML engineer: a normal user who submits jobs."""
    return make_user("alice")


@pytest.fixture
def bob(make_user: Callable[..., AbstractUser]) -> AbstractUser:
    """Another normal user, whose things alice must not see."""
    return make_user("bob")


@pytest.fixture
def olivia(make_user: Callable[..., AbstractUser]) -> AbstractUser:
    """The operator: staff and superuser."""
    return make_user("olivia", superuser=True)


@pytest.fixture
def clerk(make_user: Callable[..., AbstractUser]) -> AbstractUser:
    """Staff status and no permission: the admin shows them nothing, and neither may the API.
    Give them permissions with `grant`."""
    return make_user("clerk", staff=True)


def grant(user: AbstractUser, *perms: str) -> AbstractUser:
    """Give `user` these permissions ("app_label.codename"); returns a fresh copy, since
    Django caches a user's permissions on the object."""
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


def client_for(user: AbstractUser) -> APIClient:
    _, raw_key = api_key_create(owner=user, name="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    client.raw_key = raw_key  # type: ignore[attr-defined]
    return client


@pytest.fixture
def alice_client(alice: AbstractUser) -> APIClient:
    return client_for(alice)


@pytest.fixture
def bob_client(bob: AbstractUser) -> APIClient:
    return client_for(bob)


@pytest.fixture
def staff_client(olivia: AbstractUser) -> APIClient:
    return client_for(olivia)


@pytest.fixture
def clerk_client(clerk: AbstractUser) -> APIClient:
    return client_for(clerk)


@pytest.fixture
def admin_client(olivia: AbstractUser) -> Client:
    """A browser session in the admin as olivia (pytest-django's own logs in a user named admin).
    The login is audited, so it is the audit trail's entry #1."""
    client = Client()
    client.force_login(olivia)
    return client
