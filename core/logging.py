"""One logging setup for every linetwin process: one line per event, key=value context, or JSON lines.

Plain stdlib logging with a small formatter, so any library's log records come out in the same shape.
Pass context through ``extra={"machine": ..., "signal": ...}``; it is appended as ``key=value``, or
becomes a key of the event's JSON object (``log_format = "json"``, for a plant's log collector). The
JSON formatter is a dozen lines of ``json.dumps``; a library for it would add a dependency, not safety.
"""

from __future__ import annotations

import json
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


class JsonLinesFormatter(logging.Formatter):
    """``{"time": "2026-11-23T17:00:00.123Z", "level": "INFO", "logger": ..., "message": ..., ...}``"""

    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **{k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS},
        }
        if record.exc_info and record.levelno >= logging.ERROR:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


class RoutineNetworkLoss(logging.Filter):
    """asyncua logs a dropped connection as an ERROR with its traceback (its session's publish loop).
    The connector reconnects and says so; for an operator the loss is routine, so it becomes one
    WARNING line without the traceback. Other libraries' and linetwin's own errors keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.name.startswith("asyncua") and isinstance(error, OSError | TimeoutError):
            record.exc_info, record.exc_text = None, None
            record.msg = f"{record.getMessage()}: {error!r}"
            record.args = ()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def setup_logging(level: str = "INFO", format: str = "text") -> None:
    """Configure the root logger once (``format`` text or json); quieten chatty protocol libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RoutineNetworkLoss())
    formatter: logging.Formatter = JsonLinesFormatter() if format == "json" else KeyValueFormatter()
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO: one line per InfluxDB write would drown what operators need
    for noisy in ("asyncua", "amqtt", "transitions", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
