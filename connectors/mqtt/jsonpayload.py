"""JSON cycler payloads to samples.

A message is one record or an array of records (several samples per message keep the broker round
trips down). A record: ``seq`` (int, per channel, gap-free from 0 per plant run), ``run`` (plant run id),
``ts`` (epoch number in s, ms, us or ns, told apart by magnitude, or an ISO 8601 string), optional
``cell_id``/``roll_id`` (or ``cathode_roll_id``)/``channel``/``quality``, and the signal values either
under ``values`` or as the remaining keys (a ``null`` value is no measurement and is skipped). A bad
value rejects that value only; a bad record rejects that record only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.validate import NS, TimeWindow, number
from core.errors import RejectedInput
from core.sample import Quality, Sample

CONTEXT = {"cell_id": "cell_id", "roll_id": "roll_id", "cathode_roll_id": "roll_id", "channel": "channel"}
RESERVED = frozenset({"seq", "run", "ts", "quality", "values", *CONTEXT})

Reject = Callable[[RejectedInput], None]


@dataclass(frozen=True, slots=True)
class Record:
    """The per-record context, kept so the connector can check sequences before emitting samples."""

    seq: int | None
    run: str | None
    samples: list[Sample]


def parse_time(value: Any) -> int:
    """Epoch number (unit by magnitude) or ISO 8601 string to ns."""
    if isinstance(value, bool):
        raise RejectedInput("wrong_type", f"timestamp {value!r}")
    if isinstance(value, int | float):
        magnitude = abs(value)
        scale = (
            1 if magnitude >= 1e17 else 1_000 if magnitude >= 1e14 else 1_000_000 if magnitude >= 1e11 else NS
        )
        return int(value * scale)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise RejectedInput("wrong_type", f"timestamp {value!r} is not ISO 8601") from None
        if moment.tzinfo is None:
            raise RejectedInput("wrong_type", f"timestamp {value!r} has no time zone")
        return int(moment.timestamp()) * NS + moment.microsecond * 1000
    raise RejectedInput("missing_timestamp" if value is None else "wrong_type", f"timestamp {value!r}")


def parse(
    payload: bytes,
    *,
    line: str,
    machine: str,
    channel: str | None,
    source: str,
    units: dict[str, str],
    window: TimeWindow,
    receive_time_ns: int,
    reject: Reject,
    ignore: frozenset[str] = frozenset(),
) -> list[Record]:
    """Parse one message; whole-message problems raise, per-record and per-value problems go to ``reject``."""
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RejectedInput("malformed_json", str(exc)) from None
    items = document if isinstance(document, list) else [document]
    records = []
    for item in items:
        try:
            records.append(
                _record(item, line, machine, channel, source, units, ignore, window, receive_time_ns, reject)
            )
        except RejectedInput as exc:
            reject(exc)
            if _valid_seq(item):
                records.append(Record(item["seq"], None if item.get("run") is None else str(item["run"]), []))
    return records


def _valid_seq(item: Any) -> bool:
    """A rejected record still took its sequence number: it is a reject, not a gap."""
    seq = item.get("seq") if isinstance(item, dict) else None
    return isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0


def _record(
    item: Any,
    line: str,
    machine: str,
    channel: str | None,
    source: str,
    units: dict[str, str],
    ignore: frozenset[str],
    window: TimeWindow,
    receive_time_ns: int,
    reject: Reject,
) -> Record:
    if not isinstance(item, dict):
        raise RejectedInput("wrong_type", "a record must be a JSON object")
    seq = item.get("seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 0):
        raise RejectedInput("wrong_type", f"seq {seq!r}")
    run = item.get("run")
    source_time = window.check(parse_time(item.get("ts")), receive_time_ns)
    context: dict[str, str | None] = {"cell_id": None, "roll_id": None, "channel": None}
    for key in CONTEXT.keys() & item.keys():
        if item[key] is not None:
            if not isinstance(item[key], str):
                raise RejectedInput("wrong_type", f"{key} {item[key]!r}")
            context[CONTEXT[key]] = item[key]
    quality = Quality.GOOD
    if "quality" in item:
        try:
            quality = Quality(item["quality"])
        except ValueError:
            raise RejectedInput("wrong_type", f"quality {item['quality']!r}") from None
    values = item.get("values")
    if values is None:
        values = {key: value for key, value in item.items() if key not in RESERVED}
    elif not isinstance(values, dict):
        raise RejectedInput("wrong_type", "values must be an object")
    samples = []
    channel = context["channel"] or channel
    for signal, raw in values.items():
        if raw is None or signal in ignore:
            continue
        try:
            unit = units.get(signal)
            if unit is None:
                raise RejectedInput("unknown_signal", f"{machine} has no signal {signal!r} in the tag map")
            samples.append(
                Sample(
                    line,
                    machine,
                    signal,
                    number(raw),
                    unit,
                    source_time,
                    receive_time_ns,
                    quality,
                    source,
                    seq,
                    channel,
                    context["roll_id"],
                    context["cell_id"],
                )
            )
        except RejectedInput as exc:
            reject(exc)
    return Record(seq, None if run is None else str(run), samples)
