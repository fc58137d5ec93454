"""Counters per connector and source; rejects logged at most once per interval; partitions are stable."""

from __future__ import annotations

import logging

import pytest

from connectors.accounting import Accounting
from connectors.mqtt.connector import partition_of
from core.errors import RejectedInput


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


def test_every_source_has_exactly_one_stable_partition() -> None:
    sources = [f"cycler1/ch{c:02d}" for c in range(1, 17)]
    assignment = {source: partition_of(source, 3) for source in sources}
    assert assignment == {source: partition_of(source, 3) for source in sources}
    assert set(assignment.values()) == {0, 1, 2}
