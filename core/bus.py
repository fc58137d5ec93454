"""The plant bus codec: the one place that encodes and decodes normalised samples on MQTT.

Topic ``<root>/bus/<site>/<area>/<line>/<step>`` (``core.uns``), QoS 1, payload a JSON array of objects
with the fields of :class:`core.sample.Sample` (``quality`` as its text, absent optional fields as
``null``). Decoding is strict: a missing or extra field, a wrong type or a non-finite value raises
``RejectedInput`` so a subscriber counts the message instead of acting on half of it.

Beside the stream, ``<root>/state/<site>/<area>/<line>/<step>`` holds each step's last value of every
signal as one retained message in the same codec, so a subscriber that starts after a value was last sent
(a setpoint reported once, by exception) still knows it as soon as it subscribes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from core.errors import RejectedInput
from core.sample import Quality, Sample

_FIELDS = tuple(f.name for f in fields(Sample))
_STR_FIELDS = ("line", "machine", "signal", "unit", "source")
_INT_FIELDS = ("source_time_ns", "receive_time_ns")
_OPTIONAL_STR = ("channel", "roll_id", "cell_id", "source_unit")
#: fields a producer of an older version may leave out; they decode as None
_NEWER = frozenset({"source_unit"})


def encode(samples: Iterable[Sample]) -> bytes:
    """Encode samples as one compact JSON array."""
    return json.dumps(
        [
            {
                "line": s.line,
                "machine": s.machine,
                "signal": s.signal,
                "value": s.value,
                "unit": s.unit,
                "source_time_ns": s.source_time_ns,
                "receive_time_ns": s.receive_time_ns,
                "quality": s.quality.value,
                "source": s.source,
                "seq": s.seq,
                "channel": s.channel,
                "roll_id": s.roll_id,
                "cell_id": s.cell_id,
                "source_unit": s.source_unit,
            }
            for s in samples
        ],
        separators=(",", ":"),
        allow_nan=False,
    ).encode()


def decode(payload: bytes) -> list[Sample]:
    """Decode a bus payload; raise ``RejectedInput`` naming the first problem."""
    try:
        items = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RejectedInput("malformed_json", str(exc)) from None
    if not isinstance(items, list):
        raise RejectedInput("wrong_type", "bus payload must be a JSON array")
    return [_sample(item, index) for index, item in enumerate(items)]


def _sample(item: Any, index: int) -> Sample:
    if not isinstance(item, dict):
        raise RejectedInput("wrong_type", f"item {index} is not an object")
    if set(item) | _NEWER != set(_FIELDS):
        missing = sorted(set(_FIELDS) - set(item) - _NEWER)
        extra = sorted(set(item) - set(_FIELDS))
        raise RejectedInput("wrong_type", f"item {index}: missing {missing}, unexpected {extra}")
    for name in _STR_FIELDS:
        if not isinstance(item[name], str):
            raise RejectedInput("wrong_type", f"item {index}: {name} must be a string")
    for name in _INT_FIELDS:
        if not _is_int(item[name]):
            raise RejectedInput("wrong_type", f"item {index}: {name} must be an integer")
    for name in _OPTIONAL_STR:
        if item.get(name) is not None and not isinstance(item[name], str):
            raise RejectedInput("wrong_type", f"item {index}: {name} must be a string or null")
    if item["seq"] is not None and not _is_int(item["seq"]):
        raise RejectedInput("wrong_type", f"item {index}: seq must be an integer or null")
    value = item["value"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RejectedInput("wrong_type", f"item {index}: value must be a number")
    if not math.isfinite(value):
        raise RejectedInput("non_finite", f"item {index}: value {value}")
    try:
        quality = Quality(item["quality"])
    except ValueError:
        raise RejectedInput("wrong_type", f"item {index}: quality {item['quality']!r}") from None
    return Sample(**{"source_unit": None, **item, "value": float(value), "quality": quality})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
