"""docs/lines.md "Map your line", as a user does it: a vendor's coater and calender whose tags are
``CoatWeight`` in g/m², ``PumpFlowRate`` in cm³/s and ``Thickness`` in µm is discovered, the starting
description is given its kinds and roles, and the twin built from that file alone raises the pump's wear
on the vendor's signal. The plant is ``twin sim --line`` serving the vendor's names (``plant.described``).
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
from asyncua import Client

from bench.e2e import ingest_process, pipeline_settings, simulator, twin_process
from connectors.opcua.discover import discover, render_description
from core import linedesc
from core.linedesc import LineDescription
from core.localservices import Influxd, Mosquitto

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# the vendor's tags and what the twin's step models call them: the user's edit of the discovered file
ROLES = {
    "pump_flow_rate": "pump_flow",
    "pump_flow_rate_sp": "pump_flow_setpoint",
    "foil_speed": "web_speed",
    "foil_speed_sp": "web_speed_setpoint",
    "coat_width": "coating_width",
    "shim_gap": "slot_gap",
    "coat_weight": "dry_loading",
    "nir_solvent": "residual_solvent",
    **{f"dryer{z}_temp": f"dryer_zone{z}_temperature" for z in (1, 2, 3)},
    **{f"dryer{z}_temp_sp": f"dryer_zone{z}_setpoint" for z in (1, 2, 3)},
    "inlet_coat_weight": "incoming_loading",
    "nip_force": "line_load",
    "nip_force_sp": "line_load_setpoint",
    "roll_temp": "roll_temperature",
    "roll_temp_sp": "roll_temperature_setpoint",
    "nip_speed": "speed",
}
KINDS = {"cathode_coater": "slot_die_coater", "cathode_calender": "calender"}


def _vendor_line(path: Path) -> Path:
    """The vendor's cathode coater and calender, as the plant serves them (from lines/two-coater.toml)."""
    full = linedesc.load(linedesc.builtin_path("two-coater")).model_dump()
    full["steps"] = [s for s in full["steps"] if s["id"] in KINDS]
    full["flow"] = [f for f in full["flow"] if f["source"] in KINDS and f["target"] in KINDS]
    full["line"] = "l9"
    described = LineDescription.model_validate(full)
    path.write_text(_toml(described))
    return path


def _toml(description: LineDescription) -> str:
    out = [f'site = "{description.site}"', f'area = "{description.area}"', f'line = "{description.line}"', ""]
    for step in description.steps:
        out += ["[[steps]]", f'id = "{step.id}"', f'kind = "{step.kind}"', ""]
        for s in step.signals:
            out += ["[[steps.signals]]", f'name = "{s.name}"', f'unit = "{s.unit}"']
            if s.role != s.name:
                out.append(f'role = "{s.role}"')
            if s.setpoint is not None:
                limits = f"low = {s.setpoint.low}, high = {s.setpoint.high}"
                out.append(f'setpoint = {{ {limits}, input = "{s.setpoint.input}" }}')
            out.append("")
    for f in description.flow:
        out += ["[[flow]]", f'source = "{f.source}"', f'target = "{f.target}"', ""]
    return "\n".join(out)


async def _discovered(endpoint: str) -> str:
    async with Client(endpoint, timeout=10) as client:
        machines = await discover(client)
    return render_description(machines, endpoint, "lyon", "cells", "l9")


def _assign(discovered: str) -> dict[str, Any]:
    """The user's edit: each step's kind, each vendor tag's role; setpoints marked writable."""
    data = tomllib.loads(discovered)
    for step in data["steps"]:
        step["kind"] = KINDS[step["id"]]
        for signal in step["signals"]:
            if signal["name"] in ROLES:
                signal["role"] = ROLES[signal["name"]]
    return data


def _wait_alert(url: str, cause: str, within_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    alerts: Any = None
    while time.monotonic() < deadline:
        alerts = httpx.get(f"{url}/alerts", timeout=10).json()
        found = next((a for a in alerts if a["cause"] == cause), None)
        if found is not None:
            return found
        time.sleep(1.0)
    raise AssertionError(f"no {cause} alert within {within_s} s: {alerts}")


def test_a_vendor_coater_in_g_per_m2_goes_from_discovery_to_its_first_alert(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    settings = pipeline_settings(
        mosquitto.port, influxd.url, tmp_path, scenario="pump-wear", speed=120.0, tick_s=2.0
    )
    settings.line_description = _vendor_line(tmp_path / "plant.toml")
    settings.models.calibration_s = 1200.0
    with simulator(settings):
        discovered = asyncio.run(_discovered(settings.plant.opcua_endpoint))
        first = tomllib.loads(discovered)
        coater = next(s for s in first["steps"] if s["id"] == "cathode_coater")
        units_seen = {s["name"]: s["unit"] for s in coater["signals"]}
        assert units_seen["coat_weight"] == "g/m2" and units_seen["pump_flow_rate"] == "cm3/s"
        assert "g/m²" in discovered or "g/m2" in discovered
        mapped = LineDescription.model_validate(_assign(discovered))
        assert {s.kind for s in mapped.steps} == set(KINDS.values())
        (tmp_path / "mapped.toml").write_text(_toml(mapped))
        settings.line_description = tmp_path / "mapped.toml"
        url = f"http://127.0.0.1:{settings.twin.port}"
        with ingest_process(settings), twin_process(settings):
            alert = _wait_alert(url, "pump_wear", within_s=150.0)
    assert (alert["machine"], alert["signal"]) == ("cathode_coater", "pump_flow_rate")
