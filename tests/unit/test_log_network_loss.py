"""A dropped OPC UA connection is one warning line for the operator, not asyncua's traceback."""

from __future__ import annotations

import logging
import sys

from core.logging import KeyValueFormatter, RoutineNetworkLoss


def _record(name: str, error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        info = sys.exc_info()
    return logging.LogRecord(name, logging.ERROR, __file__, 1, "Publish iteration crashed", (), info)


def test_asyncuas_connection_loss_becomes_a_warning_without_traceback() -> None:
    record = _record("asyncua.client.ua_session", ConnectionError("Connection is closed"))
    assert RoutineNetworkLoss().filter(record)
    line = KeyValueFormatter().format(record)
    assert "WARNING asyncua.client.ua_session: Publish iteration crashed: ConnectionError" in line
    assert "Traceback" not in line and "\n" not in line


def test_other_errors_keep_their_traceback() -> None:
    for record in (
        _record("asyncua.client.ua_session", ValueError("a bug")),
        _record("connectors.opcua", ConnectionError("ours")),
    ):
        RoutineNetworkLoss().filter(record)
        assert record.levelno == logging.ERROR
        assert "Traceback" in KeyValueFormatter().format(record)
