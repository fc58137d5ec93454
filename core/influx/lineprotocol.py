"""Samples to InfluxDB line protocol, in the ``process`` schema of docs/interfaces.md.

Hand-written rather than influxdb-client's ``Point.to_line_protocol()``, which builds a dict per point and
sorts its tags on every call. A plant reuses a few hundred series all day, so the escaped tag part of a
point (measurement and tags, sorted by key as InfluxDB stores them) is built once per series and cached;
a point is then that prefix, the fields and the time. The escaping follows the line protocol reference
(commas, spaces and equals signs in tags; quotes and backslashes in strings).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from core.sample import Sample

_TAG_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\=", "\\": "\\\\", "\n": " "})
_FIELD_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": " "})
SERIES_CACHE_SIZE = 65_536


def tag(value: str) -> str:
    return value.translate(_TAG_ESCAPES)


def string_field(value: str) -> str:
    return '"' + value.translate(_FIELD_ESCAPES) + '"'


@lru_cache(maxsize=SERIES_CACHE_SIZE)
def process_series(
    line: str,
    machine: str,
    channel: str | None,
    signal: str,
    unit: str,
    quality: str,
    source_unit: str | None = None,
) -> str:
    """The measurement and tags of one ``process`` series, followed by ``value=``; ``source_unit`` is the
    unit the source sent when ingest converted the value into ``unit``."""
    channel_tag = f"channel={tag(channel)}," if channel else ""
    source_unit_tag = f"source_unit={tag(source_unit)}," if source_unit else ""
    return (
        f"process,{channel_tag}line={tag(line)},machine={tag(machine)},quality={quality},"
        f"signal={tag(signal)},{source_unit_tag}unit={tag(unit)} value="
    )


def process_fields(seq: int | None, roll_id: str | None, cell_id: str | None, time_ns: int) -> str:
    """What follows the value: the optional fields, then the time (ns at the source)."""
    tail = "" if seq is None else f",seq={seq}i"
    if roll_id:
        tail += ",roll_id=" + string_field(roll_id)
    if cell_id:
        tail += ",cell_id=" + string_field(cell_id)
    return f"{tail} {time_ns}"


def process_point(sample: Sample) -> str:
    """One ``process`` point."""
    series = process_series(
        sample.line,
        sample.machine,
        sample.channel,
        sample.signal,
        sample.unit,
        sample.quality.value,
        sample.source_unit,
    )
    return (
        f"{series}{sample.value!r}"
        f"{process_fields(sample.seq, sample.roll_id, sample.cell_id, sample.source_time_ns)}"
    )


def process_points(samples: Iterable[Sample]) -> list[str]:
    return [process_point(sample) for sample in samples]


def connector_point(
    connector: str, source: str, fields: dict[str, float], time_ns: int, reason: str = ""
) -> str:
    """One ``connector`` accounting point (counters are cumulative integers)."""
    tags = f"connector,connector={tag(connector)}"
    if reason:
        tags += f",reason={tag(reason)}"
    tags += f",source={tag(source or '-')}"
    body = ",".join(f"{name}={int(value)}i" for name, value in fields.items())
    return f"{tags} {body} {time_ns}"
