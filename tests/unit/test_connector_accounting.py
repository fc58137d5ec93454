"""Counters per connector and source; rejects logged at most once per interval; partitions are stable;
the ingest latency histogram."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from connectors.accounting import Accounting
from connectors.mqtt.partitions import partition_of
from core.errors import RejectedInput
from core.influx.writer import InfluxWriter
from core.settings import InfluxSettings


def test_rejects_are_counted_every_time_but_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    accounting = Accounting(log_every_s=3600)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            accounting.reject("mqtt", "cycler1/ch01", RejectedInput("non_finite", "nan"))
        accounting.reject("mqtt", "cycler1/ch01", RejectedInput("wrong_type", "str"))
    assert accounting.value("rejected", "mqtt", "cycler1/ch01", "non_finite") == 5
    assert accounting.value("rejected", "mqtt", "cycler1/ch01", "wrong_type") == 1
    assert len(caplog.records) == 2


def test_counters_are_kept_per_connector_and_source() -> None:
    accounting = Accounting()
    accounting.count("received", "opcua", "host/coater1", 10)
    accounting.count("received", "mqtt", "cycler1/ch01", 3)
    assert accounting.value("received", "opcua", "host/coater1") == 10
    assert accounting.total("received") == 13


def test_a_new_source_reports_every_counter_from_zero() -> None:
    accounting = Accounting()
    accounting.count("received", "mqtt", "cycler1/ch01", 3)
    readings = {c.name: c.value for c in accounting.values() if c.source == "cycler1/ch01"}
    assert readings == {
        "received": 3,
        "written": 0,
        "spooled": 0,
        "replayed": 0,
        "seq_gaps": 0,
        "redelivered": 0,
        "late": 0,
        "backfilled": 0,
        "queue_overflows": 0,
    }


def test_every_source_has_exactly_one_stable_partition() -> None:
    sources = [f"cycler1/ch{c:02d}" for c in range(1, 17)]
    assignment = {source: partition_of(source, 3) for source in sources}
    assert assignment == {source: partition_of(source, 3) for source in sources}
    assert set(assignment.values()) == {0, 1, 2}


def _bucket(accounting: Accounting, connector: str, le: str) -> float:
    value = accounting.registry.get_sample_value(
        "linetwin_ingest_latency_seconds_bucket", {"connector": connector, "le": le}
    )
    return value or 0.0


def test_latencies_land_in_their_buckets_per_connector() -> None:
    accounting = Accounting()
    accounting.latencies("mqtt", [0.003, 0.2, 0.3, 7.0])
    accounting.latencies("opcua", [0.04])
    assert [_bucket(accounting, "mqtt", le) for le in ("0.005", "0.25", "0.5", "5.0", "10.0", "+Inf")] == [
        1,
        2,
        3,
        3,
        4,
        4,
    ]
    assert _bucket(accounting, "opcua", "0.025") == 0
    assert _bucket(accounting, "opcua", "0.05") == 1


async def test_the_writer_observes_each_sources_oldest_point_once_per_write(tmp_path: Path) -> None:
    accounting = Accounting()
    writer = InfluxWriter(InfluxSettings(spool_dir=tmp_path), accounting)

    async def accepted(body: bytes) -> None:
        return None

    writer._post = accepted  # type: ignore[method-assign]
    now = time.time_ns()
    writer.add(["a 1"], ("mqtt", "cycler1/ch01"), [now - 10**9])
    writer.add(["a 2", "a 3"], ("mqtt", "cycler1/ch01"), [now, now - 2 * 10**9])
    writer.add(["a 4"], ("mqtt", "cycler1/ch02"), [now])
    writer.add(["b 1"], ("opcua", "coater1"), [now])
    await writer.close()
    assert _bucket(accounting, "mqtt", "1.0") == 1, "ch01 counts once, at its oldest point"
    assert _bucket(accounting, "mqtt", "2.5") == 2
    assert _bucket(accounting, "opcua", "0.25") == 1
    assert accounting.value("written", "mqtt", "cycler1/ch01") == 3


async def test_the_writer_times_the_wait_from_receipt_whatever_the_source_clock_says(tmp_path: Path) -> None:
    """A simulator at 60x stamps its samples hours ahead: the latency is meaningless there, the wait
    (receipt to written, this host's clock) is not."""
    accounting = Accounting()
    writer = InfluxWriter(InfluxSettings(spool_dir=tmp_path), accounting)

    async def slow(body: bytes) -> None:
        await asyncio.sleep(0.3)

    writer._post = slow  # type: ignore[method-assign]
    ahead = time.time_ns() + 5 * 3600 * 10**9
    writer.add(["a 1"], ("mqtt", "cycler1/ch01"), [ahead])
    writer.add(["a 2"], ("mqtt", "cycler1/ch01"), [ahead])
    writer.add(["b 1"], ("opcua", "coater1"), [ahead])
    await writer.close()

    def waited(connector: str, le: str) -> float:
        labels = {"connector": connector, "le": le}
        return accounting.registry.get_sample_value("linetwin_ingest_wait_seconds_bucket", labels) or 0.0

    assert [waited("mqtt", le) for le in ("0.25", "0.5", "+Inf")] == [0, 1, 1], "once per source and write"
    assert waited("opcua", "0.25") == 0 and waited("opcua", "0.5") == 1
    assert _bucket(accounting, "mqtt", "0.005") == 1, "the source-time latency: negative, first bucket"
