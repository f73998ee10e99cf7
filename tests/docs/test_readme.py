"""The README stays a newcomer's page that points into the docs, and its links land.

The docs site's own links and anchors are checked by `mkdocs build --strict` (.ci/run); the
README is outside the site, so its links are checked here the same way: the file exists and the
anchor is a heading of it, slugged as MkDocs slugs headings (Python-Markdown's toc extension).
"""

from __future__ import annotations

import re
from pathlib import Path

from markdown.extensions.toc import slugify  # type: ignore[import-untyped]  # no stubs installed

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # a `# comment` in code is no heading
    return {slugify(re.sub(r"[`*]", "", title).strip(), "-") for title in re.findall(r"^#+ (.+)$", text, re.M)}


def test_the_readme_is_at_most_400_lines() -> None:
    assert len(README.read_text().splitlines()) <= 400


def test_the_readme_keeps_what_a_newcomer_needs() -> None:
    text = README.read_text()
    for needed in ("make run", "make test", "createsuperuser", "create_api_key", "/api/cloud/jobs/submit"):
        assert needed in text, needed
    assert "## Where data lives" in text and "(docs/configuration.md)" in text


def test_every_link_of_the_readme_lands() -> None:
    links = re.findall(r"\]\(((?:docs|bench)/[^)]+)\)", README.read_text())
    assert len(links) > 15
    for link in links:
        path, _, anchor = link.partition("#")
        assert (ROOT / path).is_file(), link
        if anchor:
            assert anchor in anchors(ROOT / path), link


def test_the_anchor_check_would_catch_a_broken_anchor() -> None:
    page = ROOT / "docs" / "backup.md"
    assert "restore" in anchors(page) and "automated-backups-cron" in anchors(page)
    assert "no-such-section" not in anchors(page)
