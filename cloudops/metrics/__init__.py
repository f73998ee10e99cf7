"""Prometheus metrics: the runtime configuration, the scrape endpoint and its sources."""
