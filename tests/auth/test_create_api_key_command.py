from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from cloudops.models import ApiKey

pytestmark = pytest.mark.django_db


def test_it_prints_the_key_alone_on_the_last_line(olivia: AbstractUser) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", "--user", "olivia", "--name", "deploy", stdout=out, stderr=err)
    raw_key = out.getvalue().strip().splitlines()[-1]
    assert raw_key.startswith("sk_") and " " not in raw_key
    assert ApiKey.objects.get(owner=olivia).name == "deploy"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert client.get("/api/users/me").json()["user"]["username"] == "olivia"


def test_it_fails_clearly_for_an_unknown_user() -> None:
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("create_api_key", "--user", "ghost")


def test_it_rejects_an_empty_name(olivia: AbstractUser) -> None:
    with pytest.raises(CommandError, match="--name"):
        call_command("create_api_key", "--user", "olivia", "--name", " ")
    assert not ApiKey.objects.exists()
