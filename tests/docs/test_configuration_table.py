"""docs/configuration.md's table of environment variables is what the code reads, both ways.

The names the code reads are found by parsing the source, not by a list kept here:

- settings.py's `_env_*` readers, recognised as any function of the module that passes its first
  parameter to `os.environ` (or to another reader), and every call of one;
- direct reads anywhere in the application (`os.environ.get`, `os.environ[...]`,
  `os.environ.setdefault`, `... in os.environ`, `os.getenv`);
- secrets read through the chain (`get_secret`, `aget_secret`, `secrets.lookup`), whose first
  source is the environment.

A read whose name is not a constant (the secrets chain's own generic lookup, the variables a
local job inherits) must be one of the few listed in DYNAMIC_READS with the reason, so a new
computed read fails here until someone decides how it is documented. Variables that a library
reads on cloudops' behalf (boto3 for Secrets Manager, hvac for Vault) are listed in THIRD_PARTY
and checked against that library's installed source, so the table cannot keep a row nothing
reads. The example trainer is the job's side, not configuration: the names it reads must be the
ones the local-provider page says a job is given.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"
SETTINGS = ROOT / "cloudops" / "settings.py"
PACKAGES = ("cloudops", "providers", "storage", "audit", "notifications", "simpletuner")
EXAMPLE_TRAINER = ROOT / "providers" / "example_trainer.py"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_READERS = {"get_secret", "aget_secret", "lookup"}

# (file, the argument's source) -> why its name is not a constant and where the names are documented.
DYNAMIC_READS = {
    ("cloudops/secrets.py", "key"): "the chain's environment source reads whatever secret it is asked for",
    ("providers/hints.py", "key"): "PROVIDER_TOKENS: each provider's token constant, read where it is defined",
    ("providers/local.py", "k"): "SIMPLETUNER_LOCAL_ENV_PASSTHROUGH: names the operator chooses",
}

# Read by a library on cloudops' behalf -> the installed package whose source names it.
THIRD_PARTY = {
    "AWS_DEFAULT_REGION": "botocore",
    "AWS_ENDPOINT_URL": "botocore",
    "AWS_ACCESS_KEY_ID": "botocore",
    "AWS_SECRET_ACCESS_KEY": "botocore",
    "AWS_SESSION_TOKEN": "botocore",
    "AWS_PROFILE": "botocore",
    "VAULT_CACERT": "hvac",
    "VAULT_CAPATH": "hvac",
}


def documented(text: str) -> set[str]:
    """The variable names in the first column of the table under "## Environment variables"."""
    section = text.split("\n## Environment variables\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|") and not line.startswith("|---")]
    assert len(rows) > 50, "the configuration table is missing or cut short"
    names: set[str] = set()
    for row in rows[1:]:  # the header row names the columns
        names.update(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", row.split("|")[1]))
    return names


def _is_environ(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def _is_getenv(func: ast.expr) -> bool:
    """`os.environ.get`, `.setdefault`, `.pop` or `os.getenv`."""
    if not isinstance(func, ast.Attribute):
        return False
    if _is_environ(func.value):
        return func.attr in ("get", "setdefault", "pop")
    return isinstance(func.value, ast.Name) and func.value.id == "os" and func.attr == "getenv"


def _environ_keys(tree: ast.AST) -> Iterator[ast.expr]:
    """The key expression of every read of the process environment in `tree`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and _is_getenv(node.func):
            yield node.args[0]
        elif isinstance(node, ast.Subscript) and _is_environ(node.value) and isinstance(node.ctx, ast.Load):
            yield node.slice
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.In | ast.NotIn):
            yield from [node.left] if _is_environ(node.comparators[0]) else []


def _readers(tree: ast.Module) -> set[str]:
    """Functions of the module that read the environment variable named by their first parameter,
    directly or through another such function (settings.py's `_env_*`)."""
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.args.args]
    readers: set[str] = set()
    while True:
        found = set(readers)
        for function in functions:
            first = function.args.args[0].arg
            keys = list(_environ_keys(function)) + [
                call.args[0]
                for call in ast.walk(function)
                if isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id in readers
                and call.args
            ]
            if any(isinstance(key, ast.Name) and key.id == first for key in keys):
                found.add(function.name)
        if found == readers:
            return readers
        readers = found


def _is_secret_read(func: ast.expr) -> bool:
    """`get_secret(...)`, `aget_secret(...)`, `lookup(...)` or `secrets.<one of them>(...)`."""
    if isinstance(func, ast.Name):
        return func.id in SECRET_READERS
    return (
        isinstance(func, ast.Attribute)
        and func.attr in SECRET_READERS
        and isinstance(func.value, ast.Name)
        and func.value.id == "secrets"
    )


def _secret_keys(tree: ast.AST) -> Iterator[ast.expr]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and _is_secret_read(node.func):
            yield node.args[0]


def _constants(tree: ast.Module) -> dict[str, ast.expr]:
    """Module-level `NAME = expression` assignments, to resolve a key given by name."""
    found: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = node.value
    return found


def reads(path: Path, source: str | None = None) -> tuple[set[str], set[str]]:
    """(names the file reads from the environment, keys that are not constants, as source text)."""
    tree = ast.parse(source if source is not None else path.read_text())
    readers = _readers(tree)
    keys = list(_environ_keys(tree)) + list(_secret_keys(tree))
    keys += [
        node.args[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in readers and node.args
    ]
    constants = _constants(tree)
    inside_readers = {
        id(node)
        for function in tree.body
        if isinstance(function, ast.FunctionDef) and function.name in readers
        for node in ast.walk(function)
    }
    names: set[str] = set()
    dynamic: set[str] = set()
    for key in keys:
        if id(key) in inside_readers:
            continue  # a reader passing its own parameter on: its callers are counted instead
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            names.add(key.value)
        elif isinstance(key, ast.Name) and key.id in constants:
            names.update(
                node.value
                for node in ast.walk(constants[key.id])
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.match(node.value)
            )
        else:
            dynamic.add(ast.unparse(key))
    return names, dynamic


def application_files() -> Iterable[Path]:
    yield ROOT / "manage.py"
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts and path != EXAMPLE_TRAINER:
                yield path


def code_reads() -> tuple[set[str], set[tuple[str, str]]]:
    names: set[str] = set()
    dynamic: set[tuple[str, str]] = set()
    for path in application_files():
        found, computed = reads(path)
        names |= found
        dynamic |= {(str(path.relative_to(ROOT)), key) for key in computed}
    return names, dynamic


def read_by_library(name: str, package: str) -> bool:
    root = Path(importlib.import_module(package).__file__ or "").parent
    quoted = (f'"{name}"', f"'{name}'")
    return any(any(q in path.read_text(errors="replace") for q in quoted) for path in root.rglob("*.py"))


def secrets_manager_endpoint_variable() -> str:
    """botocore builds the per-service endpoint variable's name; ask it rather than guess."""
    from botocore.configprovider import ConfiguredEndpointProvider

    provider = ConfiguredEndpointProvider(full_config={}, scoped_config={}, client_name="secretsmanager")
    return str(provider._get_service_env_var_name())


def test_every_variable_the_code_reads_is_in_the_table() -> None:
    names, _ = code_reads()
    missing = sorted(names - documented(PAGE.read_text()))
    assert not missing, f"read by the code but not in docs/configuration.md's table: {missing}"


def test_every_variable_in_the_table_is_read() -> None:
    names, _ = code_reads()
    libraries = set(THIRD_PARTY) | {secrets_manager_endpoint_variable()}
    extra = sorted(documented(PAGE.read_text()) - names - libraries)
    assert not extra, f"in docs/configuration.md's table but read by nothing: {extra}"


@pytest.mark.parametrize(("name", "package"), sorted(THIRD_PARTY.items()))
def test_each_library_variable_is_read_by_that_library_and_documented(name: str, package: str) -> None:
    assert read_by_library(name, package), f"{package} no longer reads {name}"
    assert name in documented(PAGE.read_text())


def test_the_secrets_manager_endpoint_variable_is_the_one_botocore_reads() -> None:
    assert secrets_manager_endpoint_variable() in documented(PAGE.read_text())


def test_every_computed_read_is_a_known_one() -> None:
    _, dynamic = code_reads()
    assert dynamic == set(DYNAMIC_READS), "a read of the environment by a computed name: document it here"


def test_the_settings_readers_are_found_and_a_new_variable_would_be_caught() -> None:
    source = SETTINGS.read_text()
    names, _ = reads(SETTINGS, source)
    # One of each reader kind, through the helpers' own chain (_env_path -> _env_str -> os.environ).
    assert {"SIMPLETUNER_HOME", "DEBUG", "PORT", "REDIS_TIMEOUT", "TRUSTED_PROXIES", "STATE_BACKEND"} <= names
    assert {"RATE_LIMIT_RULES", "SIMPLETUNER_REQUIRED_SECRETS", "SIMPLETUNER_SECRETS_FILE"} <= names
    assert {"VAULT_ADDR", "BAO_ADDR", "https_proxy"} <= names
    probe = source + '\nPROBE = _env_int("CLOUDOPS_UNDOCUMENTED_PROBE", default=1)\n'
    assert "CLOUDOPS_UNDOCUMENTED_PROBE" in reads(SETTINGS, probe)[0] - documented(PAGE.read_text())


def test_a_row_nothing_reads_would_be_caught() -> None:
    text = PAGE.read_text().replace(
        "| **Server and data** | | |", "| **Server and data** | | |\n| `CLOUDOPS_NOT_READ_PROBE` | unset | nothing |"
    )
    assert "CLOUDOPS_NOT_READ_PROBE" in documented(text) - code_reads()[0]


def test_direct_and_secret_reads_outside_settings_are_found() -> None:
    names, _ = code_reads()
    # os.environ.get in a command and a client, `in os.environ`, setdefault, and the secrets chain.
    assert {"HOST", "VAULT_TOKEN", "BAO_TOKEN", "SSL_CERT_FILE", "SSL_CERT_DIR", "DJANGO_SETTINGS_MODULE"} <= names
    assert {"SIMPLETUNER_SERVER_KEY", "SIMPLETUNER_AUDIT_KEY", "SIMPLETUNER_METRICS_TOKEN"} <= names
    assert {"REPLICATE_API_TOKEN", "REPLICATE_WEBHOOK_SECRET", "HF_TOKEN"} <= names


def test_what_the_example_trainer_reads_is_what_a_job_is_given() -> None:
    names, dynamic = reads(EXAMPLE_TRAINER)
    assert not dynamic
    page = (ROOT / "docs" / "providers-and-jobs.md").read_text()
    section = page.split("\n## The local provider\n", 1)[1].split("\n## ", 1)[0]
    assert names and all(f"`{name}`" in section for name in names), sorted(names)
