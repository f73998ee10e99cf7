"""Reading a scrape the way Prometheus does (prometheus_client's own text parser)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

PROMETHEUS_PATH = "/api/cloud/metrics/prometheus"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of an exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def types(text: str) -> dict[str, str]:
    """{sample name: metric type} (a counter's family `x` owns the sample `x_total`)."""
    result = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            result[sample.name] = family.type
    return result


class Scraper:
    def __init__(self, client: APIClient) -> None:
        self.client = client

    def text(self) -> str:
        response = self.client.get(PROMETHEUS_PATH)
        assert response.status_code == 200, response.content
        return response.content.decode()

    def __call__(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return samples(self.text())

    def value(self, name: str, **labels: str) -> float | None:
        return self().get((name, tuple(sorted(labels.items()))))
