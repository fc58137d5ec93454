"""Per source, per connector counters: received, written, spooled, replayed, rejected{reason}, seq_gaps.

Prometheus counters (prometheus-client) are the one store: ``twin ingest --stats`` scrapes them and the
periodic ``connector`` measurement is read from them, so the three views can never disagree. Each
``Accounting`` has its own registry, so several connectors (and tests) in one process stay apart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from core.errors import LinetwinError, RejectedInput

log = logging.getLogger(__name__)

COUNTERS = ("received", "written", "spooled", "replayed", "seq_gaps")


@dataclass(frozen=True, slots=True)
class CounterValue:
    """One counter reading: ``name`` is a COUNTERS entry or ``rejected`` (then ``reason`` is set)."""

    name: str
    connector: str
    source: str
    value: float
    reason: str = ""


class Accounting:
    """Counters plus a rate-limited reject log (one line per source and reason per ``log_every_s``)."""

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
        self._log_every_s = log_every_s
        self._last_logged: dict[tuple[str, str, str], tuple[float, int]] = {}

    def count(self, name: str, connector: str, source: str, amount: float = 1) -> None:
        self._counters[name].labels(connector, source).inc(amount)

    def reject(self, connector: str, source: str, error: RejectedInput) -> None:
        """Count a reject and log it, at most once per source and reason per interval."""
        self._rejected.labels(connector, source, error.reason).inc()
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

    def value(self, name: str, connector: str, source: str, reason: str = "") -> float:
        """Current value of one counter (0 when never counted)."""
        return sum(
            c.value
            for c in self.values()
            if (c.name, c.connector, c.source, c.reason) == (name, connector, source, reason)
        )

    def total(self, name: str) -> float:
        """Sum of one counter over all connectors, sources and reasons."""
        return sum(c.value for c in self.values() if c.name == name)

    def values(self) -> Iterator[CounterValue]:
        for metric in self.registry.collect():
            name = metric.name.removeprefix("linetwin_ingest_")
            if name not in (*COUNTERS, "rejected"):
                continue
            for sample in metric.samples:
                if not sample.name.endswith("_total"):
                    continue
                labels = sample.labels
                yield CounterValue(
                    name, labels["connector"], labels["source"], sample.value, labels.get("reason", "")
                )

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose the counters on ``http://host:port/metrics`` (prometheus-client's own server thread)."""
        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise LinetwinError(
                f"cannot serve metrics on {host}:{port} ({exc.strerror}); set ingest.metrics_port"
            ) from None
