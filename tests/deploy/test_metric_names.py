"""The Grafana dashboard and the alert rules query only what cloudops exports.

The exposition is the real one: the `full` template's categories rendered as the scrape
endpoint renders them, on a test database with something in every category. Every metric
name in every panel's and every rule's PromQL must be a series of it (or one Prometheus makes
itself), with the labels the query names.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pytest_django.fixtures import Settings as SettingsWrapper

from cloudops.metrics.categories import TEMPLATES
from cloudops.metrics.exposition import render
from tests.deploy.kit import DASHBOARD, PROMETHEUS
from tests.services import require_tool

pytestmark = pytest.mark.django_db

# Series Prometheus writes itself: `up` for every scrape, `probe_success` from the blackbox
# exporter's readiness probes.
PROMETHEUS_SERIES = {"up": {"job", "instance"}, "probe_success": {"job", "instance"}}
TARGET_LABELS = {"job", "instance"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
# Grafana's interval variables, as Grafana substitutes them before Prometheus sees the query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "30s", "$__range": "1h"}

STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
SELECTOR = re.compile(r"(?<![\w:])([A-Za-z_:][\w:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)")


def grafana_expressions() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables substituted) of every panel's queries."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            found.append((panel["title"], expr))
    return found


def alert_expressions() -> list[tuple[str, str]]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [(rule["alert"], rule["expr"]) for group in rules["groups"] for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, aggregations,
    keywords, label names, strings or durations."""
    text = STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = GROUPING.sub(" ", text)
    names = set()
    for match in IDENTIFIER.finditer(text):
        if text[match.end() :].lstrip().startswith("(") or match.group(1) in KEYWORDS:
            continue
        names.add(match.group(1))
    return names


def label_uses(expr: str) -> list[tuple[str | None, str]]:
    """(metric or None for a grouping, label) for every label a query names."""
    text = STRING.sub('""', expr)
    uses: list[tuple[str | None, str]] = []
    for metric, matchers in SELECTOR.findall(text):
        uses += [(metric, label) for label in MATCHER.findall(matchers)]
    for labels in GROUPING.findall(text):
        uses += [(None, label.strip()) for label in labels.split(",") if label.strip()]
    return uses


@pytest.fixture
def exported(busy_instance: None, settings: SettingsWrapper) -> dict[str, set[str]]:
    """{series name: its label names} of the `full` template's real exposition."""
    settings.SIMPLETUNER_METRICS_CACHE_SECONDS = 0
    text = render(TEMPLATES["full"]["categories"]).decode()
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def assert_queries_exported(queries: list[tuple[str, str]], exported: dict[str, set[str]]) -> None:
    known = {name: labels | TARGET_LABELS for name, labels in exported.items()} | PROMETHEUS_SERIES
    for title, expr in queries:
        names = metric_names(expr)
        assert names, f"{title}: no metric found in {expr!r}"
        assert names <= set(known), f"{title}: {sorted(names - set(known))} not exported ({expr})"
        in_query = set().union(*(known[name] for name in names))
        for metric, label in label_uses(expr):
            assert label in (known[metric] if metric else in_query), f"{title}: no label {label!r} ({expr})"


def test_every_dashboard_panel_queries_metrics_the_full_template_exports(exported: dict[str, set[str]]) -> None:
    queries = grafana_expressions()
    assert len(queries) >= 20
    assert_queries_exported(queries, exported)
    # Django's own metrics (the `django` category, per process: docs/django-metrics.md) have no
    # panel on this dashboard; none may expect them until one is made for them.
    assert not any(name.startswith("django_") for _, expr in queries for name in metric_names(expr))
    # Processes and targets come from cloudops' own series, not from `up`.
    assert not any("up" in metric_names(expr) for _, expr in queries)


def test_the_dashboard_shows_every_metric_the_full_template_exports(exported: dict[str, set[str]]) -> None:
    shown = set().union(*(metric_names(expr) for _, expr in grafana_expressions()))
    ours = {name for name in exported if not name.startswith("django_")}  # see the test above
    assert ours <= shown, sorted(ours - shown)


def test_every_alert_rule_queries_metrics_the_full_template_exports(exported: dict[str, set[str]]) -> None:
    assert_queries_exported(alert_expressions(), exported)


def test_the_name_extraction_finds_metrics_and_skips_the_rest() -> None:
    # The checks above are only as good as this.
    expr = (
        'sum by (endpoint_status) (max without (instance) (increase(simpletuner_http_errors_total{endpoint_status=~"a_(401|403)"}[1h])))'
        " / on() group_left sum(rate(simpletuner_http_requests_total[5m])) > bool 2 * 86400 or time() - x_seconds offset 1h"
    )
    assert metric_names(expr) == {"simpletuner_http_errors_total", "simpletuner_http_requests_total", "x_seconds"}
    assert label_uses(expr) == [
        ("simpletuner_http_errors_total", "endpoint_status"),
        (None, "endpoint_status"),
        (None, "instance"),
    ]


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses each query as a recording rule: the real PromQL parser.
    rules = [
        {"record": f"cloudops_dashboard_query_{n}", "expr": expr} for n, (_, expr) in enumerate(grafana_expressions())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [require_tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_panel_uses_the_dashboards_prometheus_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    [variable] = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == ("datasource", "datasource", "prometheus")
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
