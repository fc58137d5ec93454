"""Per source, per connector counters: received, written, spooled, replayed, rejected{reason}, seq_gaps,
redelivered (a message whose sequence number was handed over already: a duplicate, not a gap),
late (a skipped sequence number that arrived after all: handed over; seq_gaps minus late is missing),
backfilled (values read from an OPC UA server's history after a reconnect),
queue_overflows (an OPC UA server's monitored-item queue dropped values); MQTT messages that arrived on
a filter shared with other ingest processes and were theirs (the load a partition carries in vain); and
per connector the ingest latency (source timestamp to written) and wait (receipt to written, on this
host's clock: the part ingest adds, known even when the source's clock or a simulator's speed puts its
timestamps elsewhere).

Prometheus counters (prometheus-client) are the one store: ``twin ingest --stats`` scrapes them and the
periodic ``connector`` measurement is read from them, so the three views can never disagree. Each
``Accounting`` has its own registry, so several connectors (and tests) in one process stay apart.
Connectors count once per message or batch (``amount``), never per sample: a labelled counter increment
costs about a microsecond, as much as the rest of a sample's normalisation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.errors import RejectedInput
from core.influx.spool import SourceCounts

log = logging.getLogger(__name__)

COUNTERS = (
    "received",
    "written",
    "spooled",
    "replayed",
    "seq_gaps",
    "redelivered",
    "late",
    "backfilled",
    "queue_overflows",
)
#: Ingest latency buckets (s): the writer flushes every ``flush_interval_ms`` (500 by default), so most
#: samples land between 10 ms and 1 s; the tail reaches into retries (up to ``retry_max_s``) and beyond.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True, slots=True)
class CounterValue:
    """One counter reading: ``name`` is a COUNTERS entry or ``rejected`` (then ``reason`` is set)."""

    name: str
    connector: str
    source: str
    value: float
    reason: str = ""


class Accounting:
    """Counters plus a rate-limited reject log (one line per source and reason per ``log_every_s``).

    Also the InfluxDB writer's ``Delivery``: it reports written, spooled, replayed and rejected points,
    the spool depth and the latencies here.
    """

    def __init__(self, log_every_s: float = 60.0) -> None:
        self.registry = CollectorRegistry()
        self._counters = {
            name: Counter(
                f"linetwin_ingest_{name}",
                f"Samples {name.replace('_', ' ')} per connector and source",
                ("connector", "source"),
                registry=self.registry,
            )
            for name in COUNTERS
        }
        self._rejected = Counter(
            "linetwin_ingest_rejected",
            "Inputs rejected at the connector edge, by reason",
            ("connector", "source", "reason"),
            registry=self.registry,
        )
        self.spool_depth = Gauge(
            "linetwin_ingest_spool_depth", "Batches waiting in the disk spool", registry=self.registry
        )
        self.other_partition = Counter(
            "linetwin_ingest_other_partition_messages",
            "MQTT messages received on a filter shared between ingest processes that were another's",
            registry=self.registry,
        )
        self.latency = Histogram(
            "linetwin_ingest_latency_seconds",
            "Source timestamp to InfluxDB write acknowledged, per source and write (its oldest sample)",
            ("connector",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.wait = Histogram(
            "linetwin_ingest_wait_seconds",
            "Receipt by ingest to InfluxDB write acknowledged (this host's clock), per source and write",
            ("connector",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._log_every_s = log_every_s
        self._last_logged: dict[tuple[str, str, str], tuple[float, int]] = {}
        self._children: dict[tuple[str, str, str], Counter] = {}

    def count(self, name: str, connector: str, source: str, amount: float = 1) -> None:
        key = (name, connector, source)
        child = self._children.get(key)
        if child is None:
            self._first_seen(connector, source)
            child = self._children[key]
        child.inc(amount)

    def _first_seen(self, connector: str, source: str) -> None:
        """Every counter of a new source starts at 0, so "no sequence gaps" reads as 0 on the dashboards
        and in Prometheus, not as a missing series."""
        for counter in COUNTERS:
            self._children[(counter, connector, source)] = self._counters[counter].labels(connector, source)

    def reject(self, connector: str, source: str, error: RejectedInput, amount: int = 1) -> None:
        """Count a reject and log it, at most once per source and reason per interval."""
        self._rejected.labels(connector, source, error.reason).inc(amount)
        key = (connector, source, error.reason)
        now = time.monotonic()
        last, suppressed = self._last_logged.get(key, (-self._log_every_s, 0))
        if now - last >= self._log_every_s:
            log.warning(
                "rejected input: %s",
                error,
                extra={
                    "connector": connector,
                    "source": source,
                    "reason": error.reason,
                    "suppressed": suppressed,
                },
            )
            self._last_logged[key] = (now, 0)
        else:
            self._last_logged[key] = (last, suppressed + 1)

    def counted(self, name: str, counts: SourceCounts) -> None:
        for (connector, source), n in counts.items():
            self.count(name, connector, source, n)

    def rejected(self, counts: SourceCounts, error: RejectedInput) -> None:
        """A 400 means points the database will never take: each one is a reject."""
        for (connector, source), n in counts.items():
            self.reject(connector, source, error, n)

    def spool_changed(self, depth: int) -> None:
        self.spool_depth.set(depth)

    def latencies(self, connector: str, seconds: Sequence[float]) -> None:
        child = self.latency.labels(connector)
        for value in seconds:
            child.observe(value)

    def waits(self, connector: str, seconds: Sequence[float]) -> None:
        child = self.wait.labels(connector)
        for value in seconds:
            child.observe(value)

    def value(self, name: str, connector: str, source: str, reason: str = "") -> float:
        """Current value of one counter (0 when never counted)."""
        return sum(
            c.value
            for c in self.values(name)
            if (c.connector, c.source, c.reason) == (connector, source, reason)
        )

    def total(self, name: str) -> float:
        """Sum of one counter over all connectors, sources and reasons."""
        return sum(c.value for c in self.values(name))

    def values(self, name: str | None = None) -> Iterator[CounterValue]:
        """Every counter's reading, or one counter's (cheaper: only its metric is collected)."""
        metrics = (
            self.registry.collect()
            if name is None
            else (self._rejected if name == "rejected" else self._counters[name]).collect()
        )
        for metric in metrics:
            metric_name = metric.name.removeprefix("linetwin_ingest_")
            if metric_name not in (*COUNTERS, "rejected"):
                continue
            for sample in metric.samples:
                if not sample.name.endswith("_total"):
                    continue
                labels = sample.labels
                yield CounterValue(
                    metric_name,
                    labels["connector"],
                    labels["source"],
                    sample.value,
                    labels.get("reason", ""),
                )
