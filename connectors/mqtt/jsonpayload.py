"""JSON cycler payloads to samples.

A message is one record or an array of records (several samples per message keep the broker round
trips down). A record: ``seq`` (int, per channel, gap-free from 0 per plant run), ``run`` (plant run id),
``ts`` (epoch number in s, ms, us or ns, told apart by magnitude, or an ISO 8601 string), optional
``cell_id``/``roll_id`` (or ``cathode_roll_id``)/``channel``/``quality``, and the signal values either
under ``values`` or as the remaining keys (a ``null`` value is no measurement and is skipped). A bad
value rejects that value only; a bad record rejects that record only.

A record stays one record (its values under one context) rather than one ``Sample`` per value: the
connector writes line protocol straight from it and makes Samples only for the plant bus. orjson decodes;
what it refuses (``NaN``/``Infinity`` literals, which Python's json writes) goes to the standard library's
json, so every message is judged exactly as ``json.loads`` would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from connectors.validate import NS, TimeWindow, number
from core.errors import RejectedInput
from core.sample import Quality, Sample
from core.units import Conversion

CONTEXT = ("cell_id", "roll_id", "cathode_roll_id", "channel")
RESERVED = frozenset({"seq", "run", "ts", "quality", "values", *CONTEXT})
GOOD = Quality.GOOD
#: Epoch numbers from here up are in ns (1e17 ns is 1973; 1e17 us would be the year 5138).
NS_EPOCH_FLOOR = 10**17

Reject = Callable[[RejectedInput], None]


class Record(NamedTuple):
    """One record's context and its accepted values as (signal, value, unit); a rejected record keeps
    only its ``seq`` and ``run``, so the connector can still check the sequence. A NamedTuple: made per
    record, it costs a quarter of a frozen dataclass."""

    seq: int | None
    run: str | None
    time_ns: int = 0
    quality: Quality = Quality.GOOD
    channel: str | None = None
    roll_id: str | None = None
    cell_id: str | None = None
    values: tuple[tuple[str, float, str], ...] = ()

    def samples(
        self,
        line: str,
        machine: str,
        source: str,
        receive_time_ns: int,
        source_units: dict[str, str] | None = None,
    ) -> list[Sample]:
        """One Sample per value; ``source_units`` names the unit a converted signal was sent in."""
        sent_in = source_units or {}
        return [
            Sample(
                line,
                machine,
                signal,
                value,
                unit,
                self.time_ns,
                receive_time_ns,
                self.quality,
                source,
                self.seq,
                self.channel,
                self.roll_id,
                self.cell_id,
                sent_in.get(signal),
            )
            for signal, value, unit in self.values
        ]


def loads(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        try:
            return json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RejectedInput("malformed_json", str(exc)) from None


def parse_time(value: Any) -> int:
    """Epoch number (unit by magnitude) or ISO 8601 string to ns."""
    if type(value) is int and value >= NS_EPOCH_FLOOR:  # already ns: the common case, checked first
        return value
    if isinstance(value, bool):
        raise RejectedInput("wrong_type", f"timestamp {value!r}")
    if isinstance(value, int | float):
        magnitude = abs(value)
        scale = (
            1
            if magnitude >= NS_EPOCH_FLOOR
            else 1_000
            if magnitude >= 1e14
            else 1_000_000
            if magnitude >= 1e11
            else NS
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
    machine: str,
    channel: str | None,
    units: dict[str, str],
    window: TimeWindow,
    receive_time_ns: int,
    reject: Reject,
    ignore: frozenset[str] = frozenset(),
    convert: dict[str, Conversion] | None = None,
) -> list[Record]:
    """Parse one message; whole-message problems raise, per-record and per-value problems go to ``reject``.
    ``convert`` maps a signal sent in another unit than its stored one to its conversion."""
    document = loads(payload)
    items = document if isinstance(document, list) else [document]
    earliest, latest = receive_time_ns - window.max_past_age_ns, receive_time_ns + window.max_future_skew_ns
    bare = _bare(ignore)
    records = []
    for item in items:
        try:
            records.append(
                _record(
                    item,
                    machine,
                    channel,
                    units,
                    ignore,
                    bare,
                    window,
                    receive_time_ns,
                    earliest,
                    latest,
                    reject,
                    convert or {},
                )
            )
        except RejectedInput as exc:
            reject(exc)
            if _valid_seq(item):
                records.append(Record(item["seq"], None if item.get("run") is None else str(item["run"])))
    return records


def _valid_seq(item: Any) -> bool:
    """A rejected record still took its sequence number: it is a reject, not a gap."""
    seq = item.get("seq") if isinstance(item, dict) else None
    return isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0


def _record(
    item: Any,
    machine: str,
    channel: str | None,
    units: dict[str, str],
    ignore: frozenset[str],
    bare: frozenset[str],
    window: TimeWindow,
    receive_time_ns: int,
    earliest_ns: int,
    latest_ns: int,
    reject: Reject,
    convert: dict[str, Conversion],
) -> Record:
    """One record. The common case (an ns ``ts`` inside the window, text context, finite floats of known
    signals) is checked inline, without calls; anything else takes the general checks that name a reason."""
    if type(item) is not dict:
        raise RejectedInput("wrong_type", "a record must be a JSON object")
    get = item.get
    seq = get("seq")
    if seq is not None and (type(seq) is not int or seq < 0):
        raise RejectedInput("wrong_type", f"seq {seq!r}")
    run = get("run")
    source_time = get("ts")
    if type(source_time) is not int or not earliest_ns <= source_time <= latest_ns:
        source_time = window.check(parse_time(source_time), receive_time_ns)
    cell_id, cathode_roll_id = get("cell_id"), get("cathode_roll_id")
    roll_id, own_channel = get("roll_id"), get("channel")
    if not (
        (cell_id is None or type(cell_id) is str)
        and (cathode_roll_id is None or type(cathode_roll_id) is str)
        and (roll_id is None or type(roll_id) is str)
        and (own_channel is None or type(own_channel) is str)
    ):
        _check_text(item)
    quality = GOOD
    if "quality" in item:
        try:
            quality = Quality(item["quality"])
        except ValueError:
            raise RejectedInput("wrong_type", f"quality {item['quality']!r}") from None
    values = get("values")
    skip = ignore
    if values is None:
        values, skip = item, bare
    elif type(values) is not dict:
        raise RejectedInput("wrong_type", "values must be an object")
    accepted = []
    for signal, raw in values.items():
        if raw is None or signal in skip:
            continue
        unit = units.get(signal)
        if unit is not None and type(raw) is float and raw - raw == 0.0 and not convert:  # finite
            accepted.append((signal, raw, unit))
            continue
        try:
            if unit is None:
                raise RejectedInput("unknown_signal", f"{machine} has no signal {signal!r} in the tag map")
            value = number(raw)
            conversion = convert.get(signal)
            accepted.append((signal, value if conversion is None else conversion(value), unit))
        except RejectedInput as exc:
            reject(exc)
    return Record(
        seq,
        None if run is None else str(run),
        source_time,
        quality,
        own_channel or channel,
        cathode_roll_id or roll_id,
        cell_id,
        tuple(accepted),
    )


def _check_text(item: dict[str, Any]) -> None:
    for key in CONTEXT:
        value = item.get(key)
        if value is not None and not isinstance(value, str):
            raise RejectedInput("wrong_type", f"{key} {value!r}")


@lru_cache(maxsize=256)
def _bare(ignore: frozenset[str]) -> frozenset[str]:
    """Keys of a record without ``values`` that are not signals."""
    return RESERVED | ignore
