"""JSON cycler payloads and Sparkplug B state: what becomes a sample, what is rejected and why."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.mqtt import jsonpayload
from connectors.mqtt.sparkplug import REBIRTH, SparkplugHost, rebirth_request
from connectors.validate import TimeWindow
from core.errors import RejectedInput
from core.sparkplug import DataType, MessageType, Payload, Topic

PropertySet, PropertyValue = Payload.PropertySet, Payload.PropertyValue

NOW = time.time_ns()
WINDOW = TimeWindow(max_future_skew_ns=86_400 * 10**9, max_past_age_ns=30 * 86_400 * 10**9)
UNITS = {"voltage": "V", "current": "A", "capacity": "Ah"}


def _parse(payload: bytes) -> tuple[list[jsonpayload.Record], list[str]]:
    rejects: list[str] = []
    records = jsonpayload.parse(
        payload,
        machine="cycler1",
        channel="ch03",
        units=UNITS,
        window=WINDOW,
        receive_time_ns=NOW,
        reject=lambda error: rejects.append(error.reason),
        ignore=frozenset({"formation_start"}),
    )
    return records, rejects


def test_a_cycler_record_becomes_one_sample_per_signal_with_context() -> None:
    ms = NOW // 1_000_000
    payload = {
        "seq": 7,
        "run": "r1",
        "ts": ms,
        "cell_id": "C-1",
        "voltage": 3.7,
        "current": 1.5,
        "step": None,
    }
    (record,), rejects = _parse(json.dumps(payload).encode())
    assert rejects == []
    assert (record.seq, record.run) == (7, "r1")
    samples = record.samples("line1", "cycler1", "cycler1/ch03", NOW)
    assert {(s.signal, s.value, s.unit) for s in samples} == {
        ("voltage", 3.7, "V"),
        ("current", 1.5, "A"),
    }
    assert all(
        s.source_time_ns == ms * 1_000_000 and s.cell_id == "C-1" and s.channel == "ch03" for s in samples
    )


def test_an_array_of_records_is_several_samples_and_ignored_keys_are_skipped() -> None:
    items = [{"seq": i, "run": "r", "ts": NOW, "voltage": 3.0 + i, "formation_start": 1} for i in range(3)]
    records, rejects = _parse(json.dumps(items).encode())
    assert [r.seq for r in records] == [0, 1, 2]
    assert rejects == []


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"seq": 1, "run": "r", "ts": NOW, "voltage": "3.7"}, "wrong_type"),
        ({"seq": 1, "run": "r", "ts": NOW, "voltage": True}, "wrong_type"),
        ({"seq": "1", "run": "r", "ts": NOW, "voltage": 3.7}, "wrong_type"),
        ({"seq": 1, "run": "r", "voltage": 3.7}, "missing_timestamp"),
        ({"seq": 1, "run": "r", "ts": "yesterday", "voltage": 3.7}, "wrong_type"),
        ({"seq": 1, "run": "r", "ts": 0, "voltage": 3.7}, "stale_timestamp"),
        ({"seq": 1, "run": "r", "ts": NOW * 2, "voltage": 3.7}, "future_timestamp"),
        ({"seq": 1, "run": "r", "ts": NOW, "pressure": 1.0}, "unknown_signal"),
        ({"seq": 1, "run": "r", "ts": NOW, "cell_id": 5, "voltage": 3.7}, "wrong_type"),
    ],
)
def test_bad_records_and_values_are_rejected_with_their_reason(item: dict[str, object], reason: str) -> None:
    records, rejects = _parse(json.dumps(item).encode())
    assert rejects == [reason]
    assert not any(r.values for r in records)


def test_non_finite_values_are_rejected() -> None:
    _, rejects = _parse(b'{"seq": 1, "ts": %d, "voltage": NaN, "current": -Infinity}' % NOW)
    assert rejects == ["non_finite", "non_finite"]


@given(st.binary(max_size=200))
def test_any_bytes_either_parse_or_raise_a_reject(data: bytes) -> None:
    try:
        _parse(data)
    except RejectedInput as exc:
        assert exc.reason == "malformed_json"


def _message(
    kind: MessageType, seq: int, metrics: list[dict[str, object]], device: str | None = "ch01"
) -> tuple[Topic, bytes]:
    payload = Payload(timestamp=NOW // 1_000_000, seq=seq)
    for metric in metrics:
        payload.metrics.add(**metric)  # type: ignore[arg-type]
    return Topic("linetwin", kind, "cycler1", device), payload.SerializeToString()


def _host() -> SparkplugHost:
    return SparkplugHost("line1", "cycler1", UNITS, WINDOW)


def _born(host: SparkplugHost) -> None:
    host.handle(
        *_message(
            MessageType.NBIRTH, 0, [{"name": "bdSeq", "datatype": DataType.UINT64, "long_value": 0}], None
        ),
        NOW,
    )
    birth = [
        {"name": "voltage", "alias": 100, "datatype": DataType.DOUBLE, "double_value": 3.5},
        {"name": "cell_id", "alias": 105, "datatype": DataType.STRING, "string_value": "C-9"},
        {"name": "result/charge_capacity", "alias": 106, "datatype": DataType.DOUBLE, "is_null": True},
    ]
    host.handle(*_message(MessageType.DBIRTH, 1, birth), NOW)


def test_sparkplug_aliases_from_dbirth_resolve_ddata_and_context_persists() -> None:
    host = _host()
    _born(host)
    outcome = host.handle(*_message(MessageType.DDATA, 2, [{"alias": 100, "double_value": 3.9}]), NOW)
    (sample,) = outcome.samples
    assert (sample.signal, sample.value, sample.unit, sample.channel, sample.cell_id) == (
        "voltage",
        3.9,
        "V",
        "ch01",
        "C-9",
    )
    assert (outcome.missing, outcome.rebirth) == (0, False)


def test_a_sparkplug_seq_gap_is_counted_and_asks_for_a_rebirth() -> None:
    host = _host()
    _born(host)
    outcome = host.handle(*_message(MessageType.DDATA, 6, [{"alias": 100, "double_value": 3.9}]), NOW)
    assert outcome.missing == 4
    assert outcome.rebirth


def test_sparkplug_seq_wraps_after_255_without_a_gap() -> None:
    host = _host()
    _born(host)
    host.nodes[("linetwin", "cycler1")].seq = 255
    outcome = host.handle(*_message(MessageType.DDATA, 0, [{"alias": 100, "double_value": 3.9}]), NOW)
    assert outcome.missing == 0


def test_an_unknown_alias_is_rejected_and_asks_for_a_rebirth() -> None:
    host = _host()
    _born(host)
    outcome = host.handle(*_message(MessageType.DDATA, 2, [{"alias": 999, "double_value": 1.0}]), NOW)
    assert [e.reason for e in outcome.rejects] == ["unknown_alias"]
    assert outcome.rebirth


def test_data_before_a_birth_is_rejected() -> None:
    with pytest.raises(RejectedInput, match="no_birth"):
        _host().handle(*_message(MessageType.DDATA, 3, [{"alias": 100, "double_value": 1.0}]), NOW)


def test_garbage_and_truncated_protobuf_are_rejected() -> None:
    topic, data = _message(MessageType.DDATA, 2, [{"name": "voltage", "double_value": 3.9}])
    for broken in (b"\xff\xfe\xfd", data[:-4]):
        with pytest.raises(RejectedInput, match="malformed_protobuf"):
            _host().handle(topic, broken, NOW)


def test_the_rebirth_request_is_an_ncmd_with_the_control_metric() -> None:
    topic, data = rebirth_request(Topic("linetwin", MessageType.DDATA, "cycler1", "ch01"))
    assert topic == "spBv1.0/linetwin/NCMD/cycler1"
    (metric,) = Payload.FromString(data).metrics
    assert (metric.name, metric.boolean_value) == (REBIRTH, True)


def _gateway(pattern: str | None) -> tuple[SparkplugHost, list[dict[str, object]]]:
    """One device carrying two channels' voltages, as a cycler gateway publishes them."""
    host = SparkplugHost("line1", "cycler1", {}, WINDOW, pattern)
    host.handle(
        *_message(
            MessageType.NBIRTH, 0, [{"name": "bdSeq", "datatype": DataType.UINT64, "long_value": 0}], None
        ),
        NOW,
    )
    volt = PropertySet(keys=["engUnit"], values=[PropertyValue(type=DataType.STRING, string_value="V")])
    birth = [
        {"name": f"Channel0{k}/Voltage", "alias": k, "datatype": DataType.DOUBLE, "properties": volt}
        for k in (1, 2)
    ]
    host.handle(*_message(MessageType.DBIRTH, 1, [{**m, "double_value": 3.0} for m in birth], "Gateway"), NOW)
    data = [{"alias": 1, "double_value": 3.61}, {"alias": 2, "double_value": 3.72}]
    return host, data


def test_metrics_whose_names_end_alike_stay_two_series_with_the_birth_certificates_unit() -> None:
    host, data = _gateway(None)
    outcome = host.handle(*_message(MessageType.DDATA, 2, data, "Gateway"), NOW)
    assert not outcome.rejects
    assert {(s.channel, s.signal, s.value, s.unit) for s in outcome.samples} == {
        ("Gateway", "Channel01/Voltage", 3.61, "V"),
        ("Gateway", "Channel02/Voltage", 3.72, "V"),
    }


def test_a_metric_pattern_splits_a_gateways_channels_out_of_the_metric_names() -> None:
    host, data = _gateway(r"(?P<channel>Channel\d+)/(?P<signal>\w+)")
    outcome = host.handle(*_message(MessageType.DDATA, 2, data, "Gateway"), NOW)
    assert {(s.channel, s.signal, s.value) for s in outcome.samples} == {
        ("Channel01", "Voltage", 3.61),
        ("Channel02", "Voltage", 3.72),
    }


def test_a_pattern_that_would_merge_two_metrics_refuses_the_second_instead_of_overwriting() -> None:
    host, data = _gateway(r"\w+/(?P<signal>\w+)")
    outcome = host.handle(*_message(MessageType.DDATA, 2, data, "Gateway"), NOW)
    assert [(s.signal, s.value) for s in outcome.samples] == [("Voltage", 3.61)]
    assert [e.reason for e in outcome.rejects] == ["ambiguous_metric"]
    assert "Channel01/Voltage" in str(outcome.rejects[0]) and "Channel02/Voltage" in str(outcome.rejects[0])


def test_a_birth_certificates_engunit_is_converted_into_the_tag_maps_unit_or_refused() -> None:
    host = SparkplugHost("line1", "coater9", {"CoatWeight": "mg/cm2", "Flow": "mg/cm2"}, WINDOW)
    host.handle(
        *_message(
            MessageType.NBIRTH, 0, [{"name": "bdSeq", "datatype": DataType.UINT64, "long_value": 0}], None
        ),
        NOW,
    )

    def eng(unit: str) -> PropertySet:
        return PropertySet(keys=["engUnit"], values=[PropertyValue(type=DataType.STRING, string_value=unit)])

    birth = [
        {"name": "CoatWeight", "alias": 1, "datatype": DataType.DOUBLE, "properties": eng("g/m²")},
        {"name": "Flow", "alias": 2, "datatype": DataType.DOUBLE, "properties": eng("mL/min")},
    ]
    host.handle(*_message(MessageType.DBIRTH, 1, [{**m, "double_value": 0.0} for m in birth], "Die"), NOW)
    data = [{"alias": 1, "double_value": 205.0}, {"alias": 2, "double_value": 80.0}]
    outcome = host.handle(*_message(MessageType.DDATA, 2, data, "Die"), NOW)
    (sample,) = outcome.samples
    assert (sample.value, sample.unit, sample.source_unit) == (pytest.approx(20.5), "mg/cm2", "g/m²")
    assert [e.reason for e in outcome.rejects] == ["unit_mismatch"]


def test_a_rebirth_declares_the_metrics_afresh() -> None:
    host, data = _gateway(r"\w+/(?P<signal>\w+)")
    assert host.handle(*_message(MessageType.DDATA, 2, data, "Gateway"), NOW).rejects, (
        "two metrics, one series"
    )
    host.handle(
        *_message(
            MessageType.NBIRTH, 0, [{"name": "bdSeq", "datatype": DataType.UINT64, "long_value": 1}], None
        ),
        NOW,
    )
    reborn = [{"name": "Channel02/Voltage", "alias": 2, "datatype": DataType.DOUBLE, "double_value": 3.0}]
    host.handle(*_message(MessageType.DBIRTH, 1, reborn, "Gateway"), NOW)
    outcome = host.handle(
        *_message(MessageType.DDATA, 2, [{"alias": 2, "double_value": 3.8}], "Gateway"), NOW
    )
    assert [e.reason for e in outcome.rejects] == ["unknown_signal"], "the old birth's engUnit is gone"
    host.units["Voltage"] = "V"
    outcome = host.handle(
        *_message(MessageType.DDATA, 3, [{"alias": 2, "double_value": 3.9}], "Gateway"), NOW
    )
    assert [(s.signal, s.value) for s in outcome.samples] == [("Voltage", 3.9)], "the new owner of the series"
