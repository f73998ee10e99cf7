from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest

from tests.server.live import free_port, running


@pytest.mark.slow
def test_make_run_serves_the_embedded_default_with_admin_css(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.fail("make is required: it runs the README's commands")
    home = tmp_path / "home"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update({"SIMPLETUNER_HOME": str(home), "PORT": str(port)})
    log = tmp_path / "server.log"
    with running(["make", "-s", "run"], env, port, log) as base:
        assert httpx.get(f"{base}/api/cloud/health/live").json() == {"status": "ok"}
        assert httpx.get(f"{base}/api/cloud/health/ready").json() == {"status": "ready"}
        login_page = httpx.get(f"{base}/admin/login/")
        assert login_page.status_code == 200
        css = re.search(r'href="(/static/admin/css/[^"]+\.css)"', login_page.text)
        assert css, "the admin page links no stylesheet"
        stylesheet = httpx.get(base + css.group(1))
        assert stylesheet.status_code == 200
        assert stylesheet.headers["content-type"].startswith("text/css")
        docs = httpx.get(f"{base}/api/docs/")
        assert docs.status_code == 200
        assert "cdn" not in docs.text.lower()
        for asset in re.findall(r'src="(/static/[^"]+)"', docs.text):
            assert httpx.get(base + asset).status_code == 200
    output = log.read_text()
    assert f"http://localhost:{port}/" in output
    assert "createsuperuser" in output and "create_api_key" in output
    assert (home / "config" / "cloud" / "jobs.db").exists()
    assert '"logger": "simpletuner.cloud.access"' in output
