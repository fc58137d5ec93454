"""Read a running process's Prometheus metrics through prometheus-client's own text parser.

Benches and integration tests judge ingest and the twin by the counters those processes publish: the
numbers a plant's Prometheus would scrape, not a second count kept beside them.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def scrape(url: str) -> Iterator[Sample]:
    """Every sample on a ``/metrics`` page."""
    for family in text_string_to_metric_families(httpx.get(url, timeout=5).text):
        yield from family.samples


def total(url: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` (as exposed, ``_total`` included) that carry ``labels``."""
    return sum(s.value for s in scrape(url) if s.name == name and labels.items() <= s.labels.items())


def counter_totals(url: str, prefix: str) -> dict[str, float]:
    """Each counter called ``<prefix><name>_total``, summed over its labels, by ``name``; a ``reason``
    label (rejects) is kept as ``name:reason``."""
    totals: dict[str, float] = {}
    for sample in scrape(url):
        if sample.name.startswith(prefix) and sample.name.endswith("_total"):
            key = sample.name.removeprefix(prefix).removesuffix("_total")
            if "reason" in sample.labels:
                key += ":" + sample.labels["reason"]
            totals[key] = totals.get(key, 0.0) + sample.value
    return totals
