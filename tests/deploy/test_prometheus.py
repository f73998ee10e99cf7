"""The kit's Prometheus files pass promtool: the rules parse, the rules' unit tests pass, and
both scrape configs are valid; and they agree with the nginx site and what cloudops exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.kit import PROMETHEUS, nginx_upstream_ports
from tests.services import require_tool

CONFIGS = ["prometheus.yml", "prometheus-kubernetes.yml"]
TOKEN_FILES = re.compile(r"credentials_file: (\S+)")


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_alert_rules_pass_promtool_check_rules() -> None:
    done = promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 11 rules found" in done.stdout


@pytest.mark.slow
def test_the_alert_rules_fire_as_their_unit_tests_expect() -> None:
    done = promtool("test", "rules", "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_the_issue_asks_for_has_a_unit_test() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())
    tested = {case["alertname"] for test in tests["tests"] for case in test.get("alert_rule_test", [])}
    assert alerts == tested
    assert {
        "CloudopsServerDown",
        "CloudopsNotReady",
        "CloudopsCircuitOpen",
        "CloudopsHigh5xxRatio",
        "CloudopsWebhookRejectionsSpike",
        "CloudopsCostLimitNear",
        "CloudopsAuditChainVerificationFailed",
        "CloudopsBackupTooOld",
    } <= alerts
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


@pytest.mark.parametrize("name", CONFIGS)
def test_the_scrape_config_passes_promtool_check_config(name: str, tmp_path: Path) -> None:
    # promtool checks that the token file exists: point it at one in a copy of the kit.
    text = (PROMETHEUS / name).read_text()
    [token_path] = TOKEN_FILES.findall(text)
    (tmp_path / "token").write_text("scrape-token\n")
    (tmp_path / name).write_text(text.replace(token_path, str(tmp_path / "token")))
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    done = promtool("check", "config", name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout


@pytest.mark.parametrize("name", CONFIGS)
def test_the_scrape_config_keeps_the_guides_job_and_path(name: str) -> None:
    config = yaml.safe_load((PROMETHEUS / name).read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["simpletuner"]["metrics_path"] == "/api/cloud/metrics/prometheus"
    assert jobs["simpletuner"]["authorization"]["type"] == "Bearer"
    assert jobs["simpletuner-ready"]["metrics_path"] == "/probe"
    assert config["rule_files"] == ["alerts.yml"]


def test_the_host_config_scrapes_and_probes_every_process_nginx_sends_requests_to() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    [scraped] = jobs["simpletuner"]["static_configs"]
    [probed] = jobs["simpletuner-ready"]["static_configs"]
    ports = nginx_upstream_ports()
    assert len(ports) == 4
    assert scraped["targets"] == [f"127.0.0.1:{port}" for port in ports]
    assert probed["targets"] == [f"http://127.0.0.1:{port}/api/cloud/health/ready" for port in ports]


def test_the_kubernetes_config_probes_the_readiness_endpoint() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus-kubernetes.yml").read_text())
    [ready] = [job for job in config["scrape_configs"] if job["job_name"] == "simpletuner-ready"]
    targets = [rule for rule in ready["relabel_configs"] if rule.get("target_label") == "__param_target"]
    assert targets[0]["replacement"] == "http://$1/api/cloud/health/ready"
