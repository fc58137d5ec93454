"""One logging setup for every linetwin process: one line per event, key=value context.

Plain stdlib logging with a small formatter, so any library's log records come out in the same shape.
Pass context through ``extra={"machine": ..., "signal": ...}``; it is appended as ``key=value``.
"""

from __future__ import annotations

import logging
import sys
import time

_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    """``2026-11-23T17:00:00.123Z INFO connectors.mqtt: message key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        base = (
            f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')}.{int(record.msecs):03d}Z "
            f"{record.levelname} {record.name}: {record.getMessage()}"
        )
        context = " ".join(
            f"{key}={value}" for key, value in record.__dict__.items() if key not in _STANDARD_ATTRS
        )
        if context:
            base = f"{base} {context}"
        if record.exc_info and record.levelno >= logging.ERROR:
            base = f"{base}\n{self.formatException(record.exc_info)}"
        return base


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once; quieten chatty protocol libraries."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = KeyValueFormatter()
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO: one line per InfluxDB write would drown what operators need
    for noisy in ("asyncua", "amqtt", "transitions", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
