"""A what-if prediction checked against the plant: predict, push the setpoints, let the line settle, measure.

Runs the whole loop (simulator, connectors and the twin service in child processes, as in production)
and, once the twin has calibrated, takes ``STEPS`` one after the other: each asks ``POST /whatif`` for the
new setpoints, pushes them with ``POST /whatif/push``, waits ``SETTLE_S`` plant seconds (the web's
transport from coater to calender and five roll-temperature time constants), then compares the mean of
the last ``WINDOW_S`` plant seconds of each quality in InfluxDB with the prediction. Used by the
integration test and by ``twin bench whatif``.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.e2e import ingest_process, pipeline_settings, simulator, twin_process
from core.settings import Settings
from twin.influx import query

TOKEN = "whatif-steps"
SETTLE_S = 1800.0
WINDOW_S = 300.0
CALIBRATION_S = 600.0
#: quality -> (machine, signal) measured, and the relative error the prediction must stay within
QUALITIES = {
    "dry_loading": ("coater1", "dry_loading", 0.01),
    "porosity": ("calender1", "porosity", 0.02),
    "thickness": ("calender1", "thickness", 0.02),
}
#: Each step's setpoints relative to the recipe: (label, pump flow ×, line load +N/mm, roll temperature +K)
STEPS = (
    ("pump flow +4 %", 1.04, 0.0, 0.0),
    ("pump flow -4 %", 0.96, 0.0, 0.0),
    ("line load +100 N/mm", 1.0, 100.0, 0.0),
    ("line load -100 N/mm", 1.0, -100.0, 0.0),
    ("roll temperature +10 K", 1.0, 0.0, 10.0),
    ("roll temperature -10 K", 1.0, 0.0, -10.0),
)


@dataclass(frozen=True)
class Check:
    """One quality after one step: what the twin said and what the plant did."""

    step: str
    quantity: str
    unit: str
    predicted: float
    sigma: float
    low: float
    high: float
    measured: float
    tolerance: float
    extrapolated: bool

    @property
    def error_pct(self) -> float:
        return 100 * (self.measured - self.predicted) / self.predicted

    @property
    def error_sigma(self) -> float:
        return (self.measured - self.predicted) / self.sigma

    @property
    def inside(self) -> bool:
        return self.low <= self.measured <= self.high

    @property
    def close(self) -> bool:
        return abs(self.error_pct) <= 100 * self.tolerance


def step_settings(mqtt_port: int, influx_url: str, workdir: Path, speed: float) -> Settings:
    settings = pipeline_settings(
        mqtt_port, influx_url, workdir, speed=speed, tick_s=2.0, cycler_channels=1, api_token=TOKEN
    )
    settings.twin.allow_setpoint_push = True
    settings.models.calibration_s = CALIBRATION_S
    return settings


async def _measured(settings: Settings, machine: str, signal: str, points: int) -> float:
    series = await query(
        settings.influx,
        'SELECT "value" FROM "process" WHERE "line" = $line AND "machine" = $machine AND "signal" = $signal'
        f" ORDER BY time DESC LIMIT {points}",
        {"line": settings.line, "machine": machine, "signal": signal},
    )
    values = [row[1] for row in series[0]["values"]] if series else []
    if len(values) < points:
        raise RuntimeError(f"only {len(values)} of {points} {machine} {signal} values in InfluxDB")
    return sum(values) / len(values)


async def _calibrated(client: httpx.AsyncClient, within_s: float) -> dict[str, Any]:
    """The twin's what-if at the current setpoints once loading, porosity and thickness all answer."""
    deadline = time.monotonic() + within_s
    while True:
        response = await client.post("/whatif", json={})
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            if set(QUALITIES) <= {p["quantity"] for p in body["predictions"]}:
                return body
        if time.monotonic() > deadline:
            raise RuntimeError(f"the twin did not calibrate within {within_s:.0f} s: {response.text}")
        await asyncio.sleep(1.0)


async def _recipe(client: httpx.AsyncClient, line: str) -> dict[str, float]:
    machines = (await client.get(f"/lines/{line}/state")).json()["machines"]
    return {
        "pump_flow": machines["coater1"]["pump_flow_setpoint"]["value"],
        "line_load": machines["calender1"]["line_load_setpoint"]["value"],
        "roll_temperature": machines["calender1"]["roll_temperature_setpoint"]["value"],
    }


async def check_steps(settings: Settings, speed: float) -> list[Check]:
    """Predict, push, settle and measure each of ``STEPS``; the plant and twin run in ``settings``."""
    url = f"http://127.0.0.1:{settings.twin.port}"
    points = int(WINDOW_S / settings.plant.tick_s)
    checks: list[Check] = []
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await _calibrated(client, 120 + 2 * CALIBRATION_S / speed)
        recipe = await _recipe(client, settings.line)
        for label, flow, load, temperature in STEPS:
            setpoints = {
                "pump_flow": round(recipe["pump_flow"] * flow, 2),
                "line_load": recipe["line_load"] + load,
                "roll_temperature": recipe["roll_temperature"] + temperature,
            }
            answer = (await client.post("/whatif", json={"setpoints": setpoints})).json()
            predictions = {p["quantity"]: p for p in answer["predictions"]}
            pushed = await client.post(
                "/whatif/push", json={"by": "bench", "setpoints": setpoints}, headers=auth
            )
            pushed.raise_for_status()
            await asyncio.sleep(SETTLE_S / speed)
            for quantity, (machine, signal, tolerance) in QUALITIES.items():
                p = predictions[quantity]
                measured = await _measured(settings, machine, signal, points)
                checks.append(
                    Check(
                        label,
                        quantity,
                        p["unit"],
                        p["value"],
                        p["sigma"],
                        p["interval_low"],
                        p["interval_high"],
                        measured,
                        tolerance,
                        bool(p["extrapolated"]),
                    )
                )
    return checks


def run_steps(mqtt_port: int, influx_url: str, speed: float = 120.0) -> list[Check]:
    """Simulator, connectors and twin service on their own, then ``check_steps``."""
    with tempfile.TemporaryDirectory(prefix="lt-whatif-steps-") as workdir:
        settings = step_settings(mqtt_port, influx_url, Path(workdir), speed)
        with contextlib.ExitStack() as stack:
            stack.enter_context(ingest_process(settings))
            stack.enter_context(simulator(settings))
            stack.enter_context(twin_process(settings))
            return asyncio.run(check_steps(settings, speed))


def table_rows(checks: list[Check]) -> list[Mapping[str, str]]:
    """Each check as printable columns."""
    return [
        {
            "step": c.step,
            "quality": f"{c.quantity} ({c.unit})",
            "predicted ± σ": f"{c.predicted:.3f} ± {c.sigma:.3f}",
            "measured": f"{c.measured:.3f}",
            "error %": f"{c.error_pct:+.2f}",
            "error σ": f"{c.error_sigma:+.2f}",
            "inside 2σ": "yes" if c.inside else "NO",
            "within": f"{100 * c.tolerance:.0f} % {'yes' if c.close else 'NO'}",
            "extrapolated": "yes" if c.extrapolated else "",
        }
        for c in checks
    ]
