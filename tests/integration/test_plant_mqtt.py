"""A plain paho client receives the cyclers' JSON and Sparkplug B messages on the documented topics."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from typer.testing import CliRunner

from cli.main import app
from core.localservices import Mosquitto, free_port, start_mosquitto
from core.settings import MqttSettings, PlantSettings, Settings
from core.sparkplug import Payload
from plant.recording import record
from plant.runtime import running

pytestmark = pytest.mark.integration


class Listener:
    """A paho subscriber that queues (topic, payload, retain) as they arrive."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload, bool(m.retain)))
        self.client.connect(host, port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        time.sleep(0.3)

    def drain(self) -> list[tuple[str, bytes, bool]]:
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _settings(host: str, port: int, tmp_path: Path, **plant: object) -> Settings:
    return Settings(
        site=f"site{free_port()}",
        mqtt=MqttSettings(host=host, port=port),
        plant=PlantSettings(
            opcua_endpoint=f"opc.tcp://127.0.0.1:{free_port()}/linetwin",
            ground_truth_file=tmp_path / "truth.jsonl",
            opcua_security_modes=["None"],  # no OPC UA client here: no certificate to make either
            **plant,
        ),
    )


async def test_json_cyclers_publish_gap_free_data_results_and_ocv(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    settings = _settings(
        mosquitto.host, mosquitto.port, tmp_path, speed=400, cycler_channels=3, duration_s=1500, seed=2
    )
    root = settings.namespace().step("cycler1")
    listener = Listener(mosquitto.host, mosquitto.port, f"{root}/#")
    try:
        async with running(settings) as plant:
            await plant.finished.wait()
        await _until_quiet(listener.messages)
        messages = listener.drain()
    finally:
        listener.close()
    states = [json.loads(p) for t, p, _ in messages if t == f"{root}/state"]
    assert states[0]["state"] == "online" and states[0]["channels"] == ["ch01", "ch02", "ch03"]
    assert states[-1]["state"] == "offline" and states[-1]["run"] == plant.run_id
    by_channel: dict[str, list[tuple[str, dict[str, object]]]] = {}
    for topic, payload, _ in messages:
        parts = topic.split("/")
        if len(parts) == 6:
            by_channel.setdefault(parts[4], []).append((parts[5], json.loads(payload)))
    assert set(by_channel) == {"ch01", "ch02", "ch03"}
    for channel, received in by_channel.items():
        assert [m["seq"] for _, m in received] == list(range(len(received))), channel
        assert {m["run"] for _, m in received} == {plant.run_id}
        kinds = {kind for kind, _ in received}
        assert kinds == {"data", "result", "ocv"}
        data = [m for kind, m in received if kind == "data"]
        assert len(data) >= 1300
        assert set(data[0]) == {
            "seq",
            "run",
            "ts",
            "cell_id",
            "step",
            "voltage",
            "current",
            "temperature",
            "capacity",
        }
        assert [m["ts"] for m in data] == sorted(m["ts"] for m in data)
        assert {m["step"] for m in data} == {1, 2, 3, 4}
        assert all(2.5 < m["voltage"] < 4.3 for m in data)
        (result, *_) = [m for kind, m in received if kind == "result"]
        assert result["channel"] == channel
        assert str(result["cathode_roll_id"]).startswith("CAT-")
        assert 1.3 < result["discharge_capacity"] < 1.7
        assert 85 < result["first_cycle_efficiency"] < 92
        ocv = [m for kind, m in received if kind == "ocv"]
        assert ocv[0]["cell_id"] == result["cell_id"] and ocv[0]["age_days"] == 0
        assert 3.6 < ocv[0]["ocv"] < 3.8
    # the live run and the offline recorder of the same seed form the same cells
    recorded = record("nominal", 2, 1500, cycler_channels=3).cells.set_index("cell_id")
    live = [m for received in by_channel.values() for kind, m in received if kind == "result"]
    assert len(live) == len(recorded)
    for m in live:
        assert m["discharge_capacity"] == pytest.approx(
            recorded.loc[m["cell_id"], "discharge_capacity"], abs=1e-6
        )
        assert m["cathode_roll_id"] == recorded.loc[m["cell_id"], "cathode_roll_id"]


def _start_sim(mosquitto: Mosquitto, tmp_path: Path, site: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LINETWIN_SITE": site,
        "LINETWIN_MQTT__PORT": str(mosquitto.port),
        "LINETWIN_PLANT__GROUND_TRUTH_FILE": str(tmp_path / "truth.jsonl"),
        "LINETWIN_PLANT__CYCLER_CHANNELS": "2",
    }
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/linetwin"
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("twin")), "sim", "--opcua-endpoint", endpoint, "--speed", "5"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("stop", "exit_code", "clean"), [(signal.SIGKILL, -signal.SIGKILL, False), (signal.SIGINT, 0, True)]
)
def test_cyclers_go_offline_on_ctrl_c_and_by_last_will_when_killed(
    mosquitto: Mosquitto, tmp_path: Path, stop: signal.Signals, exit_code: int, clean: bool
) -> None:
    site = f"stop{free_port()}"
    root = f"{site}/electrodes/line1/cycler1"
    process = _start_sim(mosquitto, tmp_path, site)
    listener = Listener(mosquitto.host, mosquitto.port, f"{root}/state")
    try:
        _, payload, _ = listener.messages.get(timeout=60)
        assert json.loads(payload)["state"] == "online"
        process.send_signal(stop)
        assert process.wait(30) == exit_code
        _, payload, _ = listener.messages.get(timeout=30)
        offline = json.loads(payload)
        assert offline["state"] == "offline"
        assert (offline["ts"] is not None) == clean
    finally:
        listener.close()
        if process.poll() is None:
            process.kill()
    late = Listener(mosquitto.host, mosquitto.port, f"{root}/state")
    try:
        _, payload, retained = late.messages.get(timeout=10)
        assert retained and json.loads(payload)["state"] == "offline"
    finally:
        late.close()


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    """A broker of its own: Sparkplug's group and edge node names are fixed, so no other test may share it."""
    service = start_mosquitto()
    yield service
    service.cleanup()


def _decode(payload: bytes) -> Payload:
    message = Payload()
    message.ParseFromString(payload)
    return message


async def test_sparkplug_births_data_rebirth_and_death(broker: Mosquitto, tmp_path: Path) -> None:
    settings = _settings(
        broker.host, broker.port, tmp_path, speed=100, cycler_channels=2, payload="sparkplug"
    )
    sp = f"spBv1.0/{settings.namespace().sparkplug_group}"
    listener = Listener(broker.host, broker.port, f"{sp}/#")
    try:
        async with running(settings):
            await asyncio.sleep(3.0)
            rebirth = Payload()
            metric = rebirth.metrics.add()
            metric.name, metric.datatype, metric.boolean_value = "Node Control/Rebirth", 11, True
            listener.client.publish(f"{sp}/NCMD/cycler1", rebirth.SerializeToString(), qos=1)
            await asyncio.sleep(1.5)
        await _until_quiet(listener.messages)
        messages = [(t, _decode(p)) for t, p, _ in listener.drain() if "/NCMD/" not in t]
    finally:
        listener.close()
    topics = [t for t, _ in messages]
    assert topics[0] == f"{sp}/NBIRTH/cycler1"
    assert topics[1:3] == [f"{sp}/DBIRTH/cycler1/ch01", f"{sp}/DBIRTH/cycler1/ch02"]
    nbirth = messages[0][1]
    assert nbirth.seq == 0
    metrics = {m.name: m for m in nbirth.metrics}
    bd_seq = metrics["bdSeq"].long_value
    assert "Node Control/Rebirth" in metrics
    dbirth = messages[1][1]
    aliases = {m.alias: m for m in dbirth.metrics}
    assert {m.name for m in dbirth.metrics} >= {"voltage", "current", "temperature", "step", "capacity"}
    assert all(m.name and m.datatype for m in dbirth.metrics)
    assert len(aliases) == len(dbirth.metrics)
    # seq runs 0..255 over NBIRTH/DBIRTH/DDATA and wraps; it restarts at 0 with a rebirth
    births = [i for i, t in enumerate(topics) if t.endswith("NBIRTH/cycler1")]
    assert len(births) == 2, "a Node Control/Rebirth command re-sends the births"
    session = [m for _, m in messages[: births[1]] if not _.endswith("NDEATH/cycler1")]
    assert [m.seq for m in session] == [i % 256 for i in range(len(session))]
    assert len(session) > 256
    ddata = [m for t, m in messages if "/DDATA/cycler1/ch01" in t]
    assert len(ddata) > 100
    for message in ddata[:50]:
        for metric in message.metrics:
            assert not metric.name and metric.alias in aliases and metric.timestamp
    voltage = next(m.alias for m in dbirth.metrics if m.name == "voltage")
    volts = [m.double_value for d in ddata for m in d.metrics if m.alias == voltage]
    assert len(set(volts)) > 50 and all(2.5 < v < 4.3 for v in volts)
    assert topics[-1] == f"{sp}/NDEATH/cycler1"
    death = {m.name: m for m in messages[-1][1].metrics}
    assert death["bdSeq"].long_value == bd_seq


def test_unreachable_broker_is_a_one_line_error(tmp_path: Path) -> None:
    args = [
        "sim",
        "--mqtt-port",
        str(free_port()),
        "--opcua-endpoint",
        f"opc.tcp://127.0.0.1:{free_port()}/lt",
    ]
    result = CliRunner().invoke(
        app,
        args,
        env={
            "LINETWIN_PLANT__GROUND_TRUTH_FILE": str(tmp_path / "t.jsonl"),
            "LINETWIN_PLANT__OPCUA_SECURITY_MODES": '["None"]',
        },
    )
    assert result.exit_code == 2
    assert "cannot reach MQTT broker" in result.output
    assert "Traceback" not in result.output


async def _until_quiet(received: queue.Queue[Any], limit_s: float = 20.0) -> None:
    """Wait until the broker has delivered everything: no new message for a second."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        count = received.qsize()
        await asyncio.sleep(1.0)
        if received.qsize() == count:
            return


async def test_sequence_stays_gap_free_across_a_broker_restart(broker: Mosquitto, tmp_path: Path) -> None:
    settings = _settings(broker.host, broker.port, tmp_path, speed=50, cycler_channels=2)
    root = settings.namespace().step("cycler1")
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="restart-check", clean_session=False)
    subscriber.on_message = lambda c, u, m: received.put((m.topic, m.payload))
    subscriber.on_connect = lambda c, u, f, r, p: c.subscribe(f"{root}/+/data", qos=1)
    subscriber.reconnect_delay_set(0.1, 0.5)
    subscriber.connect(broker.host, broker.port)
    subscriber.loop_start()
    try:
        async with running(settings):
            await asyncio.sleep(2.0)
            await asyncio.to_thread(broker.stop)
            before = max(json.loads(payload)["seq"] for _, payload in list(received.queue))
            await asyncio.sleep(1.0)
            await asyncio.to_thread(broker.start)
            await asyncio.sleep(3.0)
        await _until_quiet(received)
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()
    seqs: dict[str, list[int]] = {}
    while not received.empty():
        topic, payload = received.get()
        seqs.setdefault(topic.split("/")[4], []).append(json.loads(payload)["seq"])
    assert set(seqs) == {"ch01", "ch02"}
    for channel, values in seqs.items():
        assert sorted(set(values)) == list(range(max(values) + 1)), channel
        assert max(values) > before + 10, "publishing went on after the restart"


async def test_sparkplug_reconnect_is_a_new_session_with_the_next_bd_seq(
    broker: Mosquitto, tmp_path: Path
) -> None:
    settings = _settings(broker.host, broker.port, tmp_path, speed=50, cycler_channels=1, payload="sparkplug")
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bdseq-check", clean_session=False)
    subscriber.on_message = lambda c, u, m: received.put((m.topic, m.payload))
    births = f"spBv1.0/{settings.namespace().sparkplug_group}/+/cycler1"
    subscriber.on_connect = lambda c, u, f, r, p: c.subscribe(births, qos=1)
    subscriber.reconnect_delay_set(0.1, 0.5)
    subscriber.connect(broker.host, broker.port)
    subscriber.loop_start()
    try:
        async with running(settings):
            await asyncio.sleep(1.5)
            await asyncio.to_thread(broker.stop)
            await asyncio.to_thread(broker.start)
            await asyncio.sleep(4.0)
        await _until_quiet(received)
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()
    node_messages = []
    while not received.empty():
        topic, payload = received.get()
        bd_seq = next(m.long_value for m in _decode(payload).metrics if m.name == "bdSeq")
        node_messages.append((topic.split("/")[2], bd_seq))
    births = [bd for kind, bd in node_messages if kind == "NBIRTH"]
    assert births[:2] == [0, 1]
    assert node_messages[-1] == ("NDEATH", births[-1])


async def test_the_simulator_serves_its_health(mosquitto: Mosquitto, tmp_path: Path) -> None:
    import httpx

    from plant.runtime import running

    port = free_port()
    settings = _settings(mosquitto.host, mosquitto.port, tmp_path, speed=60.0, health_port=port)
    async with running(settings) as plant, httpx.AsyncClient(timeout=2) as client:
        answer = await client.get(f"http://127.0.0.1:{port}/health")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"status": "ok", "reasons": [], "run": plant.run_id, "scenario": "nominal"}
