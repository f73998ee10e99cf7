from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT


def load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Import the real settings in a fresh interpreter with the given environment."""
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL", "DEBUG", "ALLOWED_HOSTS"}}
    clean.update({"SIMPLETUNER_HOME": str(tmp_path / "home"), "DJANGO_SETTINGS_MODULE": "cloudops.settings", **env})
    code = "from django.conf import settings; print(settings.DEBUG, settings.ALLOWED_HOSTS, settings.DATABASES['default']['NAME'])"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True)


def test_defaults_are_production_safe_and_embedded(tmp_path: Path) -> None:
    result = load_settings(tmp_path)
    assert result.returncode == 0, result.stderr
    debug, hosts, db = result.stdout.strip().split(" ", 2)[0], result.stdout, result.stdout.strip().rsplit(" ", 1)[-1]
    assert debug == "False"
    assert "'localhost'" in hosts and "'127.0.0.1'" in hosts
    assert db == str((tmp_path / "home" / "config" / "cloud" / "jobs.db").resolve())


def test_a_generated_secret_key_is_persisted_once_with_mode_0600(tmp_path: Path) -> None:
    assert load_settings(tmp_path).returncode == 0
    key_file = tmp_path / "home" / "config" / "secret_key"
    first = key_file.read_text()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_settings(tmp_path).returncode == 0
    assert key_file.read_text() == first


def test_an_unwritable_home_without_secret_key_refuses_to_start(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root ignores directory permissions; a file where the directory should be works for everyone.
        (tmp_path / "home").write_text("not a directory")
    else:
        (tmp_path / "home").mkdir(mode=0o500)
    result = load_settings(tmp_path)
    assert result.returncode != 0
    assert (
        "ImproperlyConfigured" in result.stderr
        or "FileExistsError" in result.stderr
        or "NotADirectoryError" in result.stderr
    )


def test_a_group_readable_secret_key_file_is_refused(tmp_path: Path) -> None:
    assert load_settings(tmp_path).returncode == 0
    (tmp_path / "home" / "config" / "secret_key").chmod(0o644)
    result = load_settings(tmp_path)
    assert result.returncode != 0
    assert "chmod 600" in result.stderr


def test_the_public_url_host_is_allowed(tmp_path: Path) -> None:
    result = load_settings(tmp_path, SIMPLETUNER_PUBLIC_URL="https://simpletuner.example.com/")
    assert result.returncode == 0, result.stderr
    assert "'simpletuner.example.com'" in result.stdout


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG"),
        ("SIMPLETUNER_LOG_FORMAT", "xml", "SIMPLETUNER_LOG_FORMAT='xml' is not one of json, text"),
        ("SIMPLETUNER_LOG_LEVEL", "loud", "SIMPLETUNER_LOG_LEVEL"),
        ("TRUSTED_PROXIES", "10.0.0.0/8,not-a-net", "TRUSTED_PROXIES: 'not-a-net'"),
        ("SIMPLETUNER_PUBLIC_URL", "simpletuner.example.com", "must be an absolute http(s) URL"),
        ("DATABASE_URL", "oracle-ish://x", "DATABASE_URL"),
        ("CONN_MAX_AGE", "forever", "CONN_MAX_AGE"),
    ],
)
def test_bad_values_stop_the_process_naming_the_variable(tmp_path: Path, name: str, value: str, message: str) -> None:
    result = load_settings(tmp_path, **{name: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_an_empty_trusted_proxies_trusts_nobody(tmp_path: Path) -> None:
    env = dict(os.environ.items())
    env.update(
        {"SIMPLETUNER_HOME": str(tmp_path), "DJANGO_SETTINGS_MODULE": "cloudops.settings", "TRUSTED_PROXIES": ""}
    )
    code = "from django.conf import settings; print(len(settings.TRUSTED_PROXIES))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.stdout.strip() == "0", result.stderr


def test_a_value_starting_with_a_dollar_is_taken_as_it_is(tmp_path: Path) -> None:
    # Django's generated keys can start with "$"; a reader that expands "$NAME" would look for
    # a variable of that name and refuse to start.
    env = {"SECRET_KEY": "$ecret-that-is-long-enough-0123456789", "ALLOWED_HOSTS": " a.example, b.example,,"}
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS"}}
    clean.update({"SIMPLETUNER_HOME": str(tmp_path), "DJANGO_SETTINGS_MODULE": "cloudops.settings", **env})
    code = "from django.conf import settings; print(settings.SECRET_KEY, settings.ALLOWED_HOSTS)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "$ecret-that-is-long-enough-0123456789 ['a.example', 'b.example']"


def test_settings_read_the_environment_only_through_their_env_readers() -> None:
    """One way to read a variable: the `_env_*` functions, which fail loudly on bad values."""
    tree = ast.parse((ROOT / "cloudops" / "settings.py").read_text())
    readers = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("_env_")]
    inside = {id(node) for reader in readers for node in ast.walk(reader)}
    outside = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and (node.attr in ("environ", "getenv") or (node.attr == "Env" and not _parses_a_url(tree, node)))
        and id(node) not in inside
    ]
    assert readers and outside == []


def _parses_a_url(tree: ast.Module, env: ast.Attribute) -> bool:
    """environ.Env.db_url_config(url) parses a URL string; it reads no variable."""
    return any(
        isinstance(node, ast.Attribute) and node.value is env and node.attr == "db_url_config"
        for node in ast.walk(tree)
    )


def test_every_redis_client_on_redis_url_gives_up_after_redis_timeout(tmp_path: Path) -> None:
    # What bounds a request's wait on a hung Redis (tests/redis/ check what it answers then):
    # the cache's sockets and the channel layer's calls carry REDIS_TIMEOUT.
    env = {"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_TIMEOUT": "0.25"}
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"}}
    clean.update({"SIMPLETUNER_HOME": str(tmp_path), "DJANGO_SETTINGS_MODULE": "cloudops.settings", **env})
    code = (
        "import django; django.setup()\n"
        "from django.core.cache import cache; from channels.layers import get_channel_layer\n"
        "pool = cache._cache.get_client().connection_pool.connection_kwargs\n"
        "print(pool['socket_connect_timeout'], pool['socket_timeout'], get_channel_layer().timeout)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0.25", "0.25", "0.25"]
