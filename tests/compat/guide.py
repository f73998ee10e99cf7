"""The guide's Python snippets as docs/python-scripts.md quotes them, and a way to run them.

Each snippet runs as an operator runs it: a plain `python` file (no django.setup(), no
DJANGO_SETTINGS_MODULE) in a directory of its own, with the project on PYTHONPATH as the page
says, against a separate installation in a temporary HOME (tests.backup.instance).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.backup.instance import Instance
from tests.processes import ROOT

PAGE = ROOT / "docs" / "python-scripts.md"


def page_block(*containing: str, lang: str = "python") -> str:
    """The one ```lang block of the page that contains every string given."""
    blocks = re.findall(rf"```{lang}\n(.*?)```", PAGE.read_text(), flags=re.S)
    matches = [block for block in blocks if all(text in block for text in containing)]
    assert len(matches) == 1, f"{len(matches)} {lang} blocks of {PAGE.name} contain {containing!r}"
    return matches[0]


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} is not in the snippet exactly once"
    return text.replace(old, new)


def run_script(
    instance: Instance, code: str, directory: Path, *, name: str = "script.py", check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `code` as `python <directory>/<name>` from that directory, as a cron job would."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / name
    script.write_text(code)
    env = instance.env()
    del env["DJANGO_SETTINGS_MODULE"]  # the compatibility package sets Django up by itself
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=directory, env=env, capture_output=True, text=True, timeout=300
    )
    if check:
        assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done
