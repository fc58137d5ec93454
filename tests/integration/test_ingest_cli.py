"""``twin ingest --discover`` prints a loadable tag map; ``--stats`` shows a running ingest's counters;
partitions split the sources so that together they write everything once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.ingest_sources import CyclerSource, OpcUaSource
from connectors.service import IngestService
from connectors.tagmap import TagMap, load
from core.localservices import Influxd, Mosquitto, free_port
from tests.integration.ingest_support import count, ingest_settings, points, wait_for

pytestmark = pytest.mark.integration

TWIN = str(Path(sys.executable).with_name("twin"))


@pytest.fixture
async def source() -> AsyncIterator[OpcUaSource]:
    server = OpcUaSource(free_port(), machines=2, signals=3)
    await server.start()
    yield server
    await server.stop()


#: the bench server offers no security, so discovery is configured without it
INSECURE = {"LINETWIN_OPCUA__SECURITY_POLICY": "None", "LINETWIN_OPCUA__SECURITY_MODE": "None"}


async def _discover(source: OpcUaSource, flags: list[str]) -> subprocess.CompletedProcess[str]:
    """``twin ingest --discover`` against the bench server, as a user runs it."""
    result = await asyncio.to_thread(
        subprocess.run,
        [TWIN, "ingest", "--discover", source.endpoint, *flags],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **INSECURE},
    )
    assert result.returncode == 0, result.stderr
    return result


async def test_discover_prints_a_tag_map_of_the_analog_items(source: OpcUaSource, tmp_path: Path) -> None:
    result = await _discover(source, [])
    path = tmp_path / "tags.toml"
    path.write_text(result.stdout)
    tag_map = load(path)
    assert [m.machine for m in tag_map.opcua] == ["machine1", "machine2"]
    assert [(t.signal, t.unit) for t in tag_map.opcua[0].tags] == [
        ("pump_flow", "mL/min"),
        ("web_speed", "m/min"),
        ("dry_loading", "mg/cm2"),
    ]
    assert all(m.scan_counter for m in tag_map.opcua)


async def test_discover_describe_prints_a_loadable_starting_line_description(
    source: OpcUaSource, tmp_path: Path
) -> None:
    from core import linedesc

    result = await _discover(source, ["--describe"])
    path = tmp_path / "line.toml"
    path.write_text(result.stdout)
    described = linedesc.load(path)
    assert [(s.id, s.kind) for s in described.steps] == [
        ("machine1", "unassigned"),
        ("machine2", "unassigned"),
    ]
    assert [(s.name, s.unit) for s in described.steps[0].signals] == [
        ("pump_flow", "mL/min"),
        ("web_speed", "m/min"),
        ("dry_loading", "mg/cm2"),
    ]


async def test_discover_of_an_unreachable_endpoint_is_a_clear_error(tmp_path: Path) -> None:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/none"
    result = await asyncio.to_thread(
        subprocess.run,
        [TWIN, "ingest", "--discover", endpoint],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "cannot connect to" in result.stderr and "Traceback" not in result.stderr


async def test_discover_with_the_default_security_of_a_server_without_it_names_the_settings(
    source: OpcUaSource, tmp_path: Path
) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        [TWIN, "ingest", "--discover", source.endpoint],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    message = " ".join(result.stderr.split())  # the console wraps long lines
    assert result.returncode == 2 and "Traceback" not in message
    assert "offers no Basic256Sha256 SignAndEncrypt endpoint" in message and "opcua.security_mode" in message


async def test_stats_prints_the_counters_of_a_running_ingest(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    port = free_port()
    settings = ingest_settings(tmp_path, mosquitto, influxd, ingest={"metrics_port": port})
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await wait_for(lambda: service.mqtt is not None and service.mqtt.subscribed.is_set(), what="subscription")
    source = CyclerSource(mosquitto.host, mosquitto.port, channels=2, per_message=5, run="stats")
    source.publish_round()
    source.close()
    await wait_for(lambda: service.accounting.total("written") == 10, what="10 written")
    result = await asyncio.to_thread(
        subprocess.run,
        [TWIN, "ingest", "--stats", "--metrics-port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": ""},
    )
    stop.set()
    await task
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if "cycler1/ch01" in x)
    cells = [cell.strip() for cell in line.split("│")]
    assert cells[1:8] == ["mqtt", "cycler1/ch01", "5", "5", "0", "0", "0"]
    rows = result.stdout.split("ingest latency", 1)[1].splitlines()
    latency = [cell.strip() for cell in next(x for x in rows if "│ mqtt" in x).split("│")]
    assert latency[2] == "2", "one latency observation per source and write"


def _listing_channels(tag_map: TagMap, channels: list[str]) -> TagMap:
    """The builtin map with the JSON cyclers' channels listed, as a plant's own tag map would."""
    return TagMap(
        mqtt=[s.model_copy(update={"channels": channels}) if s.format == "json" else s for s in tag_map.mqtt]
    )


@pytest.mark.parametrize("listed", [True, False], ids=["channels-listed", "channel-wildcard"])
async def test_two_partitions_split_the_sources_and_together_write_each_sample_once(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, listed: bool
) -> None:
    """With the channels listed each process subscribes to its own channels only and is sent nothing of
    the other's; on a wildcard both are sent everything and count what they skip."""
    base = ingest_settings(tmp_path, mosquitto, influxd, ingest={"partitions": 2})
    base = base.model_copy(update={"site": f"split{uuid.uuid4().hex[:6]}"})  # no other test's cyclers
    channels = [f"ch{c:02d}" for c in range(1, 9)]
    tag_map = load(None, base)
    if listed:
        tag_map = _listing_channels(tag_map, channels)
    services = []
    for partition in (0, 1):
        settings = base.model_copy(
            update={
                "ingest": base.ingest.model_copy(update={"partition": partition}),
                "influx": base.influx.model_copy(update={"spool_dir": tmp_path / f"spool{partition}"}),
            }
        )
        services.append(IngestService(settings, tag_map))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(s.run(stop)) for s in services]
    for service in services:
        await wait_for(
            lambda s=service: s.mqtt is not None and s.mqtt.subscribed.is_set(), what="subscriptions"
        )
    root = base.namespace().step("cycler1")
    source = CyclerSource(mosquitto.host, mosquitto.port, channels=8, per_message=5, run="split", root=root)
    for _ in range(4):
        source.publish_round()
    source.close()
    database = base.influx.database
    await wait_for(lambda: count(influxd, database) == 160, what="160 points")
    await wait_for(lambda: sum(s.accounting.total("written") for s in services) == 160, what="160 written")
    stop.set()
    await asyncio.gather(*tasks)
    owned = [{c.source for c in s.accounting.values() if c.name == "written"} for s in services]
    assert owned[0] and owned[1] and not owned[0] & owned[1]
    assert owned[0] | owned[1] == {f"cycler1/{c}" for c in channels}
    assert len({(r["channel"], r["seq"]) for r in points(influxd, database)}) == 160
    skipped = [
        s.accounting.registry.get_sample_value("linetwin_ingest_other_partition_messages_total")
        for s in services
    ]
    if listed:
        assert skipped == [0, 0], "a process was sent messages of the other's channels"
    else:
        assert sum(skipped) == 32, "each message went to both processes and one of them skipped it"
