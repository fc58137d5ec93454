"""A plain asyncua client browses, subscribes to and writes setpoints on the simulated line's server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, Node, ua

from core.localservices import Mosquitto, free_port
from core.settings import MqttSettings, PlantSettings, Settings
from plant.line import PilotLine
from plant.opcua_security import OPEN
from plant.opcua_server import PlantOpcUaServer
from plant.recording import record
from plant.runtime import Plant, running
from plant.scenarios import get_scenario

pytestmark = pytest.mark.integration

CEFACT = "http://www.opcfoundation.org/UA/units/un/cefact"
REQUIRED = {
    "Coater1": {
        "PumpFlow", "WebSpeed", "CoatingWidth", "SlotGap", "SlurrySolids", "SlurryDensity",
        "DryerZone1Temperature", "DryerZone2Temperature", "DryerZone3Temperature", "DryLoading",
        "ProfileLane1", "ProfileLane2", "ProfileLane3", "ProfileLane4", "ProfileLane5", "WebTension",
    },
    "Calender1": {"LineLoad", "RollGap", "RollTemperature", "Speed", "Thickness"},
}  # fmt: skip


@pytest.fixture
async def plant(mosquitto: Mosquitto, tmp_path: Path) -> AsyncIterator[Plant]:
    settings = Settings(
        site=f"opcua{free_port()}",
        mqtt=MqttSettings(host=mosquitto.host, port=mosquitto.port),
        plant=PlantSettings(
            opcua_endpoint=f"opc.tcp://127.0.0.1:{free_port()}/linetwin",
            speed=20,
            cycler_channels=2,
            ground_truth_file=tmp_path / "truth.jsonl",
            opcua_security_modes=["None"],  # the address space, read by a bare client
        ),
    )
    async with running(settings) as p:
        yield p


@pytest.fixture
async def client(plant: Plant) -> AsyncIterator[Client]:
    async with Client(plant.settings.plant.opcua_endpoint) as c:
        yield c


async def _machine(client: Client, name: str) -> Node:
    idx = await client.get_namespace_index("urn:linetwin:pilotline")
    return await client.nodes.objects.get_child([f"{idx}:PilotLine", f"{idx}:{name}"])


async def _variables(node: Node) -> dict[str, Node]:
    """Every variable below ``node`` (folders included), by BrowseName."""
    found: dict[str, Node] = {}
    for child in await node.get_children():
        node_class = await child.read_node_class()
        name = (await child.read_browse_name()).Name
        if node_class == ua.NodeClass.Variable:
            found[name] = child
        elif node_class == ua.NodeClass.Object:
            found |= {f"{name}/{k}": v for k, v in (await _variables(child)).items()}
    return found


async def test_browse_finds_every_machine_with_units_and_ranges(client: Client) -> None:
    idx = await client.get_namespace_index("urn:linetwin:pilotline")
    line = await client.nodes.objects.get_child([f"{idx}:PilotLine"])
    machines = {(await m.read_browse_name()).Name: m for m in await line.get_children()}
    assert set(machines) == {"Coater1", "Calender1"}
    for name, machine in machines.items():
        variables = await _variables(machine)
        assert REQUIRED[name] <= set(variables)
        assert {"State", "RollId", "RollPosition", "ScanCounter"} <= set(variables)
        assert any(k.startswith("Setpoints/") for k in variables)
        analog = 0
        for browse_name, var in variables.items():
            if await var.read_type_definition() != ua.NodeId(ua.ObjectIds.AnalogItemType):
                continue
            analog += 1
            eu = await (await var.get_child("0:EngineeringUnits")).read_value()
            eurange = await (await var.get_child("0:EURange")).read_value()
            assert eu.NamespaceUri == CEFACT, browse_name
            assert eu.UnitId > 0 and eu.DisplayName.Text
            assert eurange.Low < eurange.High
            assert await var.read_data_type() == ua.NodeId(ua.ObjectIds.Double)
        assert analog >= len(REQUIRED[name])


class _Collector:
    def __init__(self) -> None:
        self.values: dict[str, list[ua.DataValue]] = {}
        self.names: dict[Any, str] = {}

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        self.values.setdefault(self.names[node.nodeid], []).append(data.monitored_item.Value)


async def _subscribe(client: Client, nodes: dict[str, Node]) -> tuple[_Collector, Any]:
    collector = _Collector()
    collector.names = {n.nodeid: name for name, n in nodes.items()}
    subscription = await client.create_subscription(20, collector)
    await subscription.subscribe_data_change(list(nodes.values()), queuesize=1000)
    return collector, subscription


async def test_subscription_receives_changing_values_that_share_the_tick_timestamp(client: Client) -> None:
    coater = await _machine(client, "Coater1")
    nodes = {
        n: await coater.get_child(f"{coater.nodeid.NamespaceIndex}:{n}")
        for n in ("DryLoading", "ScanCounter")
    }
    collector, subscription = await _subscribe(client, nodes)
    await asyncio.sleep(2.0)
    await subscription.delete()
    loading = collector.values["DryLoading"]
    counters = collector.values["ScanCounter"]
    assert len({dv.Value.Value for dv in loading}) >= 10
    scans = [dv.Value.Value for dv in counters if dv.Value.Value > 0]
    assert scans == list(range(scans[0], scans[0] + len(scans)))
    assert counters[-1].Value.VariantType == ua.VariantType.UInt64
    tick_times = {dv.SourceTimestamp for dv in counters}
    assert {dv.SourceTimestamp for dv in loading[1:]} <= tick_times
    assert all(dv.StatusCode.is_good() for dv in loading[1:])


async def test_live_values_equal_the_offline_recording_of_the_same_seed(plant: Plant, client: Client) -> None:
    coater = await _machine(client, "Coater1")
    node = await coater.get_child(f"{coater.nodeid.NamespaceIndex}:DryLoading")
    collector, subscription = await _subscribe(client, {"DryLoading": node})
    await asyncio.sleep(1.5)
    await subscription.delete()
    assert plant.start is not None
    live = {
        round((dv.SourceTimestamp - plant.start).total_seconds()): dv.Value.Value
        for dv in collector.values["DryLoading"]
    }
    recording = record("nominal", plant.settings.plant.seed, max(live)).process["coater1.dry_loading"]
    offline = {round((t - recording.index[0]).total_seconds()) + 1: v for t, v in recording.items()}
    compared = [t for t in live if t > 0]
    assert len(compared) >= 10
    assert all(live[t] == pytest.approx(offline[t], abs=1e-9) for t in compared)


async def _mean_loading(client: Client, coater: Node, seconds: float) -> float:
    node = await coater.get_child(f"{coater.nodeid.NamespaceIndex}:DryLoading")
    collector, subscription = await _subscribe(client, {"DryLoading": node})
    await asyncio.sleep(seconds)
    await subscription.delete()
    values = [dv.Value.Value for dv in collector.values["DryLoading"][1:]]
    assert len(values) >= 10
    return sum(values) / len(values)


async def test_more_pump_flow_raises_the_measured_loading(client: Client) -> None:
    coater = await _machine(client, "Coater1")
    ns = coater.nodeid.NamespaceIndex
    setpoint = await coater.get_child([f"{ns}:Setpoints", f"{ns}:PumpFlowSetpoint"])
    before = await _mean_loading(client, coater, 1.5)
    flow = await setpoint.read_value()
    await setpoint.write_value(ua.DataValue(ua.Variant(flow * 1.15, ua.VariantType.Double)))
    assert await setpoint.read_value() == pytest.approx(flow * 1.15)
    await asyncio.sleep(0.3)
    after = await _mean_loading(client, coater, 1.5)
    assert after / before == pytest.approx(1.15, abs=0.02)


async def test_bad_setpoint_writes_are_refused_and_the_server_keeps_running(client: Client) -> None:
    calender = await _machine(client, "Calender1")
    ns = calender.nodeid.NamespaceIndex
    setpoint = await calender.get_child([f"{ns}:Setpoints", f"{ns}:LineLoadSetpoint"])
    original = await setpoint.read_value()
    with pytest.raises(ua.uaerrors.BadOutOfRange):
        await setpoint.write_value(ua.DataValue(ua.Variant(1e6, ua.VariantType.Double)))
    with pytest.raises(ua.uaerrors.BadTypeMismatch):
        await setpoint.write_value(ua.DataValue(ua.Variant("lots", ua.VariantType.String)))
    measured = await calender.get_child(f"{ns}:LineLoad")
    with pytest.raises(ua.UaStatusCodeError):
        await measured.write_value(ua.DataValue(ua.Variant(1.0, ua.VariantType.Double)))
    assert await setpoint.read_value() == original
    counter = await calender.get_child(f"{ns}:ScanCounter")
    first = await counter.read_value()
    await asyncio.sleep(0.3)
    assert await counter.read_value() > first


async def test_gauge_values_are_uncertain_while_the_gauge_standardises() -> None:
    line = PilotLine(get_scenario("nominal"), 1)
    server = PlantOpcUaServer(f"opc.tcp://127.0.0.1:{free_port()}/linetwin", line, OPEN)
    await server.start()
    try:
        tick = line.step(1.0)
        tick.gauge_ok = False
        await server.publish(tick, datetime.now(UTC))
        async with Client(server.endpoint) as c:
            coater = await _machine(c, "Coater1")
            ns = coater.nodeid.NamespaceIndex
            loading = await (await coater.get_child(f"{ns}:DryLoading")).read_data_value(
                raise_on_bad_status=False
            )
            lane = await (await coater.get_child(f"{ns}:ProfileLane3")).read_data_value(
                raise_on_bad_status=False
            )
            flow = await (await coater.get_child(f"{ns}:PumpFlow")).read_data_value(raise_on_bad_status=False)
        assert loading.StatusCode.is_uncertain() and lane.StatusCode.is_uncertain()
        assert flow.StatusCode.is_good()
    finally:
        await server.stop()
