"""A broker that restores its last snapshot after a crash resends what it had delivered: those messages
are duplicates to recognise (counted ``redelivered``, handed over once), not sequence gaps."""

from __future__ import annotations

import time
from pathlib import Path

from connectors.accounting import Accounting
from connectors.mqtt.connector import MqttConnector
from connectors.mqtt.sparkplug import SparkplugHost
from connectors.tagmap import TagMap
from connectors.validate import TimeWindow
from core.settings import Settings
from core.sparkplug import DataType, MessageType, Payload, Topic


def test_a_replayed_json_sequence_is_a_redelivery_and_no_gap() -> None:
    accounting = Accounting()
    connector = MqttConnector(Settings(), TagMap(), None, accounting)  # type: ignore[arg-type]
    handed = [connector._check_sequence("ch01", "run1", seq) for seq in (1, 2, 3, 4, 2, 3, 4, 5, 7)]
    assert handed == [True, True, True, True, False, False, False, True, True]
    assert accounting.total("redelivered") == 3
    assert accounting.total("seq_gaps") == 1, "only 6 is missing"


def test_a_skipped_json_sequence_that_arrives_late_is_handed_over_once() -> None:
    accounting = Accounting()
    connector = MqttConnector(Settings(), TagMap(), None, accounting)  # type: ignore[arg-type]
    # a publisher back from a broker outage sends 10 before the backlog 4-9 it queued meanwhile
    order = (1, 2, 3, 10, 4, 5, 6, 7, 8, 9, 5, 11)
    handed = [connector._check_sequence("ch01", "run1", seq) for seq in order]
    assert handed == [True] * 10 + [False, True], "4-9 are late, not redelivered; 5 again is"
    assert (accounting.total("seq_gaps"), accounting.total("late")) == (6, 6), "nothing missing in the end"
    assert accounting.total("redelivered") == 1


async def test_a_restarted_ingest_counts_what_the_broker_lost_while_both_were_down(tmp_path: Path) -> None:
    """Mosquitto acknowledges a publish before it saves it: killed while ingest is down too, it loses
    what it held. The restarted ingest's first number is then past the loss, which it must count."""
    settings = Settings(influx={"spool_dir": tmp_path})
    before = MqttConnector(settings, TagMap(), None, Accounting())  # type: ignore[arg-type]
    for seq in range(1, 13):
        assert before._check_sequence("ch01", "run1", seq)
        before._acked("ch01", "run1", seq, lambda: None)  # its points are durable
    before._sequence_file.save(before._durable, force=True)  # a second later; then kill -9
    accounting = Accounting()
    after = MqttConnector(settings, TagMap(), None, accounting)  # type: ignore[arg-type]
    handed = [after._check_sequence("ch01", "run1", seq) for seq in (21, 12, 22)]
    assert handed == [True, False, True], "12 was durable before the kill: a redelivery"
    assert accounting.total("seq_gaps") == 8, "13-20 never came"


async def test_the_kept_sequence_never_runs_ahead_of_what_is_durable(tmp_path: Path) -> None:
    """Handed over but not yet written when ingest is killed: unacknowledged, so the broker sends it
    again, and the restarted ingest must take it, not drop it as a redelivery."""
    settings = Settings(influx={"spool_dir": tmp_path})
    before = MqttConnector(settings, TagMap(), None, Accounting())  # type: ignore[arg-type]
    for seq in range(1, 11):
        before._check_sequence("ch01", "run1", seq)
        before._acked("ch01", "run1", seq, lambda: None)
    assert before._check_sequence("ch01", "run1", 11) and before._check_sequence("ch01", "run1", 14)
    before._sequence_file.save(before._durable, force=True)
    accounting = Accounting()
    after = MqttConnector(settings, TagMap(), None, accounting)  # type: ignore[arg-type]
    assert [after._check_sequence("ch01", "run1", seq) for seq in (11, 14, 15)] == [True, True, True]
    assert accounting.total("redelivered") == 0
    assert accounting.total("seq_gaps") == 2, "12 and 13 are missing for this ingest too"


def _message(seq: int, kind: MessageType = MessageType.DDATA) -> bytes:
    payload = Payload(timestamp=int(time.time() * 1000), seq=seq)
    if kind is MessageType.NBIRTH:
        payload.metrics.add(name="bdSeq", datatype=DataType.UINT64, long_value=0)
        payload.metrics.add(name="v", alias=1, datatype=DataType.DOUBLE, double_value=1.0)
    else:
        payload.metrics.add(alias=1, datatype=DataType.DOUBLE, double_value=float(seq))
    return payload.SerializeToString()


def test_a_replayed_sparkplug_seq_is_a_redelivery_not_a_wrap_around_gap() -> None:
    host = SparkplugHost("l1", "cycler1", {"v": "V"}, TimeWindow(10**18, 10**18))
    birth, data = Topic("g", MessageType.NBIRTH, "gw"), Topic("g", MessageType.NDATA, "gw")
    host.handle(birth, _message(0, MessageType.NBIRTH), time.time_ns())
    outcomes = [host.handle(data, _message(seq), time.time_ns()) for seq in (1, 2, 3, 1, 2, 3, 4)]
    assert [o.redelivered for o in outcomes] == [False, False, False, True, True, True, False]
    assert [o.missing for o in outcomes] == [0] * 7, "a replay of 1-3 is not a gap of 253"
    assert [len(o.samples) for o in outcomes] == [1, 1, 1, 0, 0, 0, 1]
