from __future__ import annotations

from pathlib import Path

import pytest
from pytest_django.fixtures import Settings

from cloudops import secrets
from tests.secrets.conftest import FakeClock, write_secrets_file

VALUE = "hf_file_value_7f3a9c"


def only_error(key: str) -> str:
    found = secrets.lookup(key)
    assert found.value is None and found.source is None
    assert len(found.errors) == 1
    assert found.errors[0].startswith("file: ")
    return found.errors[0]


@pytest.mark.parametrize("name", ["secrets.json", "secrets.yaml", "secrets.yml"])
def test_a_private_file_in_the_home_is_read(clock: FakeClock, home: Path, name: str) -> None:
    write_secrets_file(home, {"HF_TOKEN": VALUE, "PIN": 1234}, name=name)
    assert secrets.lookup("HF_TOKEN").source == "file"
    assert secrets.get_secret("HF_TOKEN") == VALUE
    # Numbers are accepted as their text.
    assert secrets.get_secret("PIN") == "1234"
    assert [p.name for p in secrets.providers()] == ["environment", "file"]


def test_a_mode_0600_file_is_accepted(clock: FakeClock, home: Path) -> None:
    path = write_secrets_file(home, {"HF_TOKEN": VALUE}, mode=0o600)
    assert secrets.get_secret("HF_TOKEN") == VALUE
    assert oct(path.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_file_other_users_can_access_is_refused_with_the_fix(clock: FakeClock, home: Path, mode: int) -> None:
    path = write_secrets_file(home, {"HF_TOKEN": VALUE}, mode=mode)
    error = only_error("HF_TOKEN")
    assert str(path) in error
    assert f"mode 0{mode:o}" in error
    assert f"chmod 600 {path}" in error
    assert VALUE not in error


def test_a_refused_file_does_not_stop_lower_providers(
    clock: FakeClock, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_secrets_file(home, {"HF_TOKEN": VALUE}, mode=0o644)
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_env")
    assert secrets.get_secret("REPLICATE_API_TOKEN") == "r8_env"
    assert secrets.get_secret("HF_TOKEN") is None


def test_loosening_the_mode_after_it_was_read_is_noticed(clock: FakeClock, home: Path) -> None:
    path = write_secrets_file(home, {"HF_TOKEN": VALUE})
    assert secrets.get_secret("HF_TOKEN") == VALUE
    path.chmod(0o644)
    assert "chmod 600" in only_error("HF_TOKEN")


def test_an_edited_file_is_visible_at_the_next_lookup(clock: FakeClock, home: Path) -> None:
    write_secrets_file(home, {"HF_TOKEN": "old-value"})
    assert secrets.get_secret("HF_TOKEN") == "old-value"
    write_secrets_file(home, {"HF_TOKEN": "the-rotated-value"})
    assert secrets.get_secret("HF_TOKEN") == "the-rotated-value"


def test_a_file_created_after_start_is_picked_up_without_restart(clock: FakeClock, home: Path) -> None:
    assert secrets.get_secret("HF_TOKEN") is None
    assert [p.name for p in secrets.providers()] == ["environment"]
    write_secrets_file(home, {"HF_TOKEN": VALUE})
    assert secrets.get_secret("HF_TOKEN") == VALUE


def test_malformed_json_names_the_file_and_the_position_but_not_the_content(clock: FakeClock, home: Path) -> None:
    path = home / "secrets.json"
    path.write_text('{\n  "HF_TOKEN": "' + VALUE + '",\n  "X": oops\n}\n')
    path.chmod(0o600)
    error = only_error("HF_TOKEN")
    assert f"{path} is not valid JSON" in error
    assert "line 3" in error
    assert VALUE not in error and "oops" not in error


def test_malformed_yaml_names_the_file_and_the_position_but_not_the_content(clock: FakeClock, home: Path) -> None:
    path = home / "secrets.yaml"
    # An unterminated quote: PyYAML's own message would quote this line, value included.
    path.write_text(f'HF_TOKEN: "{VALUE}\nOTHER: [\n')
    path.chmod(0o600)
    error = only_error("HF_TOKEN")
    assert f"{path} is not valid YAML" in error
    assert "line" in error
    assert VALUE not in error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('["HF_TOKEN"]', "must hold an object of NAME: value pairs, not a list"),
        ('"just a string"', "must hold an object of NAME: value pairs, not a str"),
        ('{"HF_TOKEN": {"nested": "' + VALUE + '"}}', "the value of HF_TOKEN must be a string, not an object"),
        ('{"HF_TOKEN": true}', "the value of HF_TOKEN must be a string, not a boolean"),
        ('{"HF_TOKEN": ["' + VALUE + '"]}', "the value of HF_TOKEN must be a string, not a list"),
    ],
)
def test_a_file_that_is_not_a_flat_object_is_refused(clock: FakeClock, home: Path, text: str, expected: str) -> None:
    path = home / "secrets.json"
    path.write_text(text)
    path.chmod(0o600)
    error = only_error("HF_TOKEN")
    assert expected in error and str(path) in error
    assert VALUE not in error


def test_an_empty_yaml_file_holds_no_secrets(clock: FakeClock, home: Path) -> None:
    path = home / "secrets.yaml"
    path.write_text("# nothing yet\n")
    path.chmod(0o600)
    found = secrets.lookup("HF_TOKEN")
    assert found.value is None and found.errors == ()


def test_two_files_at_once_is_an_error_naming_both(clock: FakeClock, home: Path) -> None:
    write_secrets_file(home, {"HF_TOKEN": VALUE}, name="secrets.json")
    write_secrets_file(home, {"HF_TOKEN": "other"}, name="secrets.yaml")
    error = only_error("HF_TOKEN")
    assert str(home / "secrets.json") in error and str(home / "secrets.yaml") in error


def test_an_explicit_file_path_replaces_the_home_default(
    clock: FakeClock, home: Path, tmp_path: Path, settings: Settings
) -> None:
    write_secrets_file(home, {"HF_TOKEN": "from-home"})
    elsewhere = tmp_path / "mounted" / "cloudops.yaml"
    elsewhere.parent.mkdir()
    write_secrets_file(elsewhere.parent, {"HF_TOKEN": "from-mount"}, name="cloudops.yaml")
    settings.SIMPLETUNER_SECRETS_FILE = elsewhere
    assert secrets.get_secret("HF_TOKEN") == "from-mount"


def test_an_explicit_file_that_does_not_exist_is_reported(clock: FakeClock, tmp_path: Path, settings: Settings) -> None:
    settings.SIMPLETUNER_SECRETS_FILE = tmp_path / "missing.json"
    assert [p.name for p in secrets.providers()] == ["environment", "file"]
    assert f"{tmp_path / 'missing.json'} does not exist" in only_error("HF_TOKEN")


def test_a_directory_in_place_of_the_file_is_refused(clock: FakeClock, home: Path) -> None:
    (home / "secrets.json").mkdir(mode=0o700)
    assert "is not a regular file" in only_error("HF_TOKEN")
