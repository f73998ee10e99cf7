"""The metric sources of cloudops itself (HTTP, health): `collect() -> Iterable[Metric]`.

settings.METRICS_SOURCES maps a category to the dotted paths of its sources. An app exports
its numbers from its own module (providers/metrics.py, audit/metrics.py; rate limits from
cloudops/ratelimit/metrics.py) and adds one line there, so this library knows no app.
"""
