"""Bad input at every edge, generated (hypothesis): each gets a clear error or a counted reject, never a
crash, and good data beside it is kept. ``CASES`` counts the generated cases per edge; the last test
asserts every edge was fuzzed as often as stated and prints the counts (``pytest -s`` shows them)."""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from asyncua import ua
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.backtest import read_table
from connectors import tagmap
from connectors.mqtt.sparkplug import SparkplugHost
from connectors.validate import TimeWindow, number
from core import linedesc
from core.configfile import load_toml
from core.errors import ConfigError, RejectedInput
from core.settings import CONFIG_ENV, load_settings
from core.sparkplug import DataType, MessageType, Payload, Topic

pytestmark = pytest.mark.xdist_group("fuzz-edges")

CASES: Counter[str] = Counter()
EXAMPLES = 200
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
WINDOW = TimeWindow(10**18, 10**18)
LINE_TEXT = linedesc.builtin_path().read_bytes()
TAG_MAP_TEXT = b"""
[[opcua]]
machine = "coater1"
scan_counter = "ns=2;s=Coater1.ScanCounter"
[[opcua.tags]]
node = "ns=2;s=Coater1.PumpFlow"
signal = "pump_flow"
unit = "mL/min"
"""
SETTINGS_TEXT = b'line = "line1"\n[mqtt]\nport = 1883\n[twin]\nport = 8000\napi_token = "x"\n'


def _mutated(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """``data`` with each (position, deleted length, inserted bytes) applied: a file someone broke."""
    out = bytearray(data)
    for position, length, inserted in edits:
        at = position % (len(out) + 1)
        out[at : at + length] = inserted
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 8), st.binary(max_size=12)), max_size=6)


def _file_refused_clearly(data: bytes, load: object) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "file.toml"
        path.write_bytes(data)
        try:
            load(path)  # type: ignore[operator]
        except ConfigError as exc:
            assert str(exc), "the error says what is wrong"


@FUZZ
@given(EDITS)
def test_a_broken_line_description_is_a_clear_error(edits: list[tuple[int, int, bytes]]) -> None:
    CASES["line description file"] += 1
    _file_refused_clearly(_mutated(LINE_TEXT, edits), linedesc.load)


@FUZZ
@given(EDITS)
def test_a_broken_tag_map_is_a_clear_error(edits: list[tuple[int, int, bytes]]) -> None:
    CASES["tag map file"] += 1
    _file_refused_clearly(_mutated(TAG_MAP_TEXT, edits), lambda p: load_toml(p, tagmap.TagMap, "tag map"))


@FUZZ
@given(EDITS)
def test_a_broken_settings_file_is_a_clear_error(edits: list[tuple[int, int, bytes]]) -> None:
    CASES["settings file"] += 1
    before = os.environ.get(CONFIG_ENV)
    try:
        _file_refused_clearly(_mutated(SETTINGS_TEXT, edits), load_settings)
    finally:  # load_settings points the environment at the file it read
        if before is None:
            os.environ.pop(CONFIG_ENV, None)
        else:
            os.environ[CONFIG_ENV] = before


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([".csv", ".parquet"]))
def test_any_backtest_file_is_read_or_refused_clearly(data: bytes, suffix: str) -> None:
    CASES["backtest CSV/Parquet"] += 1
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"history{suffix}"
        path.write_bytes(data)
        try:
            frame = read_table(path)
        except ConfigError as exc:
            assert str(path) in str(exc)
        else:
            assert isinstance(frame.index, pd.DatetimeIndex)


ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
)


@FUZZ
@given(ODD_VALUES)
def test_an_opcua_value_of_any_type_is_a_number_or_a_counted_reject(value: object) -> None:
    CASES["OPC UA values"] += 1
    try:
        result = number(value)
    except RejectedInput as exc:
        assert exc.reason in ("wrong_type", "non_finite")
    else:
        assert math.isfinite(result) and not isinstance(value, bool)
    variant = ua.Variant(value) if value is not None and not isinstance(value, list) else None
    assert variant is None or variant.Value == value or isinstance(value, float)


def _host() -> SparkplugHost:
    host = SparkplugHost("l1", "cycler1", {"v": "V"}, WINDOW)
    birth = Payload(timestamp=int(time.time() * 1000), seq=0)
    birth.metrics.add(name="bdSeq", datatype=DataType.UINT64, long_value=0)
    birth.metrics.add(name="v", alias=1, datatype=DataType.DOUBLE, double_value=1.0)
    host.handle(Topic("g", MessageType.NBIRTH, "gw"), birth.SerializeToString(), time.time_ns())
    return host


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([MessageType.NDATA, MessageType.NBIRTH, MessageType.DDATA]))
def test_any_sparkplug_bytes_decode_or_are_a_counted_reject_and_good_data_beside_them_is_kept(
    data: bytes, kind: MessageType
) -> None:
    CASES["Sparkplug payloads"] += 1
    host = _host()
    device = "ch01" if kind is MessageType.DDATA else None
    try:
        host.handle(Topic("g", kind, "gw", device), data, time.time_ns())
    except RejectedInput as exc:
        assert exc.reason
    good = Payload(timestamp=int(time.time() * 1000), seq=1)
    good.metrics.add(alias=1, datatype=DataType.DOUBLE, double_value=3.5)
    fresh = _host()
    outcome = fresh.handle(Topic("g", MessageType.NDATA, "gw"), good.SerializeToString(), time.time_ns())
    assert [s.value for s in outcome.samples] == [3.5]


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(DataType)),
            st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**63), 2**63 - 1)),
        ),
        max_size=5,
    )
)
def test_sparkplug_metrics_of_any_type_and_value_are_samples_or_counted_rejects(
    metrics: list[tuple[DataType, float | int]],
) -> None:
    CASES["Sparkplug metrics"] += 1
    host = _host()
    payload = Payload(timestamp=int(time.time() * 1000), seq=1)
    for datatype, value in metrics:
        metric = payload.metrics.add(alias=1, datatype=datatype)
        if isinstance(value, float):
            metric.double_value = value
        else:
            metric.long_value = value % 2**64
    try:
        outcome = host.handle(
            Topic("g", MessageType.NDATA, "gw"), payload.SerializeToString(), time.time_ns()
        )
    except RejectedInput as exc:
        assert exc.reason
    else:
        assert all(math.isfinite(s.value) for s in outcome.samples)


def test_every_edge_was_fuzzed_as_often_as_stated() -> None:
    edges = (
        "line description file",
        "tag map file",
        "settings file",
        "backtest CSV/Parquet",
        "OPC UA values",
        "Sparkplug payloads",
        "Sparkplug metrics",
    )
    report = "\n".join(f"{edge}: {CASES[edge]} cases" for edge in edges)
    print(f"\ngenerated cases per edge\n{report}")
    assert all(CASES[edge] >= EXAMPLES // 2 for edge in edges), report
