"""A monitored item's queue overflow (the Overflow info bit of its StatusCode) is counted as loss."""

from __future__ import annotations

from asyncua import ua

from connectors.accounting import Accounting
from connectors.opcua.connector import MachineState, OpcUaConnector, Tag
from core.settings import Settings

OVERFLOW = 0x0400 | 0x0080  # InfoType DataValue + Overflow on a Good status (OPC UA Part 4, 7.39)


def _counter(status: int, count: int) -> ua.DataValue:
    return ua.DataValue(
        ua.Variant(count, ua.VariantType.UInt64),
        StatusCode=ua.StatusCode(status),
        SourceTimestamp=ua.DateTime.now(),
    )


def test_an_overflowed_item_is_counted_as_queue_overflow_and_a_plain_one_is_not() -> None:
    accounting = Accounting()
    connector = OpcUaConnector("opc.tcp://127.0.0.1:4840", Settings(), [], None, accounting)  # type: ignore[arg-type]
    tag = Tag(MachineState("coater1", "127.0.0.1/coater1"), "scan_counter")
    connector._handle([(tag, _counter(0, 1))])
    connector._handle([(tag, _counter(OVERFLOW, 5))])
    counts = {c.name: c.value for c in accounting.values() if c.name == "queue_overflows"}
    assert counts == {"queue_overflows": 1.0}
