"""Personas by role: vera the viewer, lena the lead, adam in the admin group (not staff).
alice and bob (tests/conftest.py) are researchers by having no role group."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser, Group
from rest_framework.test import APIClient

from tests.conftest import client_for


@pytest.fixture(autouse=True)
def own_local_jobs_dir(local_jobs_dir: Path) -> None:
    """Local jobs run in a directory of their own (tests/providers/cleanup.py)."""


def in_group(user: AbstractUser, name: str) -> AbstractUser:
    user.groups.add(Group.objects.get(name=name))
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def vera(make_user: Callable[..., AbstractUser]) -> AbstractUser:
    """A viewer: reads her own jobs, changes nothing."""
    return in_group(make_user("vera"), "viewer")


@pytest.fixture
def lena(make_user: Callable[..., AbstractUser]) -> AbstractUser:
    """A team lead: sees every job, approves held submissions."""
    return in_group(make_user("lena"), "lead")


@pytest.fixture
def adam(make_user: Callable[..., AbstractUser]) -> AbstractUser:
    """In the admin group, without staff status."""
    return in_group(make_user("adam"), "admin")


@pytest.fixture
def vera_client(vera: AbstractUser) -> APIClient:
    return client_for(vera)


@pytest.fixture
def lena_client(lena: AbstractUser) -> APIClient:
    return client_for(lena)


@pytest.fixture
def adam_client(adam: AbstractUser) -> APIClient:
    return client_for(adam)
