"""Shared fixtures: named personas and API clients authenticated as them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from rest_framework.test import APIClient

from cloudops.apikeys import api_key_create

PASSWORD = "correct horse battery staple"


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
