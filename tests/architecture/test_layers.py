"""The layers point one way (docs/architecture.md): the library in cloudops/ imports no app;
audit imports neither providers nor storage; providers does not import storage. Only the
composition root wires apps together. Checked on every import statement, function-level ones
included, by reading the source (nothing is imported to check it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The composition root: what wires the apps together (settings, URLs, the ASGI entry point
# with its handler and body policies, the admin site every app's ModelAdmins are added to),
# and the whole-database backup, which knows every app's tables (it counts jobs, checks and
# re-anchors the audit chain). A path ending in "/" is a package.
COMPOSITION_ROOT = {
    "cloudops/settings.py",
    "cloudops/urls.py",
    "cloudops/asgi.py",
    "cloudops/handler.py",
    "cloudops/bodies.py",
    "cloudops/admin_site.py",
    "cloudops/backup/",
}


def in_composition_root(relative: str) -> bool:
    return any(relative == root or (root.endswith("/") and relative.startswith(root)) for root in COMPOSITION_ROOT)


APPS = ("providers", "storage", "audit", "notifications")
# Each package, and the apps it must not import. Notifications sits above the domain: the
# code that causes an event calls the library's cloudops.notify, never the app.
FORBIDDEN = {
    "cloudops": APPS,
    "audit": ("providers", "storage", "notifications"),
    "providers": ("storage", "notifications"),
    "governance": ("notifications",),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def modules_of(package: str) -> list[Path]:
    return [
        path
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts and not in_composition_root(str(path.relative_to(ROOT)))
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_no_app_above_it(package: str) -> None:
    violations = []
    for path in modules_of(package):
        for line, module in imported_modules(path):
            top = module.split(".")[0]
            if top in FORBIDDEN[package]:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert violations == [], "\n".join(violations)


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from providers.models import Job\n    import storage.auth\n")
    assert imported_modules(module) == [(2, "providers.models"), (3, "storage.auth")]


def test_the_composition_root_files_exist() -> None:
    # A renamed root file would silently become "library" and fail the rule, or a stale
    # entry would exempt nothing: both are mistakes to notice.
    assert all((ROOT / path).is_dir() if path.endswith("/") else (ROOT / path).is_file() for path in COMPOSITION_ROOT)
