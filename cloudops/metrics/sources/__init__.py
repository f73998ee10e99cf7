"""Metric sources: one module per category, each with `collect() -> Iterable[Metric]`.

settings.METRICS_SOURCES maps a category to the dotted paths of its sources, so a feature
(rate limiting, approvals) exports its numbers by adding one line there.
"""
